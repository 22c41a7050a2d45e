package gateway

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor/internal/brokerwait"
)

// prepareJoin runs before this instance joins its group. A join starts a rebalance, and a
// classic-protocol rebalance ends only when every member has rejoined or its session has
// expired; franz-go holds the members' transactional offset commits meanwhile, so a member
// that died without leaving (kill -9, a crash) stalls every survivor's commits until its
// session expires when a new member joins before then: the survivors answer nothing for up
// to SessionTimeout. So, first, members whose process is known dead (its lock file on this
// host is unheld) are removed from the group; then, on the first join only, if a member's
// liveness cannot be told, the join waits up to JoinWait for the group to lose a member
// (a dead one expiring) before it starts. See decision 41.
func (g *Gateway[S, C, E]) prepareJoin(ctx context.Context, first bool) {
	cfg := g.cfg
	members, ok := g.groupMembers(ctx)
	if !ok {
		return
	}
	var unknown []string
	names := map[string]bool{lockName(cfg.InstanceID): true}
	for _, m := range members {
		if instance, ok := strings.CutPrefix(m.ClientID, clientIDPrefix); ok {
			names[lockName(instance)] = true
		}
	}
	sweepLocks(cfg.Group, names)
	for _, m := range members {
		instance, gateway := strings.CutPrefix(m.ClientID, clientIDPrefix)
		if gateway && instance == cfg.InstanceID {
			continue
		}
		live := livenessUnknown
		var done func(bool)
		if gateway {
			live, done = probeLive(cfg.Group, instance)
		}
		switch live {
		case livenessAlive:
		case livenessDead:
			err := g.removeMember(ctx, &m, "kastor: the instance's process on this host has ended")
			done(err == nil)
			if err != nil {
				cfg.logger.Warn("cannot remove a dead instance from the group; it leaves at its session timeout", "dead_instance", instance, "err", err)
				unknown = append(unknown, m.MemberID)
				continue
			}
			g.metrics.departed.Inc()
			cfg.logger.Info("removed a dead instance from the group: its process on this host has ended", "dead_instance", instance, "dead_member_id", m.MemberID)
		default:
			unknown = append(unknown, m.MemberID)
		}
	}
	if !first || len(unknown) == 0 || cfg.JoinWait <= 0 {
		return
	}
	start := time.Now()
	cfg.logger.Info("waiting before joining: a member of the group may have died, and joining before its session expires would stall every member's commits",
		"members_unknown", len(unknown), "at_most", cfg.JoinWait)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(cfg.JoinWait)
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			cfg.logger.Info("joining: every member stayed", "waited", time.Since(start).Round(time.Millisecond))
			return
		case <-t.C:
		}
		now, ok := g.groupMembers(ctx)
		if !ok {
			return
		}
		for _, id := range unknown {
			if !slices.ContainsFunc(now, func(m kadm.DescribedGroupMember) bool { return m.MemberID == id }) {
				cfg.logger.Info("joining: a member left the group", "member_id", id, "waited", time.Since(start).Round(time.Millisecond))
				return
			}
		}
	}
}

// groupMembers lists the group's members; false when they cannot be listed (logged) or
// the group has none.
func (g *Gateway[S, C, E]) groupMembers(ctx context.Context) ([]kadm.DescribedGroupMember, bool) {
	groups, err := kadm.NewClient(g.cluster.Client()).DescribeGroups(ctx, g.cfg.Group)
	if err == nil {
		err = groups.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, false // a new group
	}
	if err != nil {
		if ctx.Err() == nil {
			// A coordinator still loading (a new group, a broker moving) is no fault; the
			// join goes ahead without removing or waiting for anyone.
			level := slog.LevelWarn
			if brokerwait.Transient(err) {
				level = slog.LevelInfo
			}
			g.cfg.logger.Log(ctx, level, "cannot list the group's members before joining; joining at once", "err", err)
		}
		return nil, false
	}
	members := groups[g.cfg.Group].Members
	return members, len(members) > 0
}

// removeMember makes member m leave the group: by its instance ID when static, else by
// its member ID. With no member given, this instance leaves.
func (g *Gateway[S, C, E]) removeMember(ctx context.Context, m *kadm.DescribedGroupMember, reason string) error {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = g.cfg.Group
	id := kmsg.NewLeaveGroupRequestMember()
	switch {
	case m == nil:
		id.InstanceID = &g.cfg.InstanceID
	case m.InstanceID != nil:
		id.InstanceID = m.InstanceID
	default:
		id.MemberID = m.MemberID
	}
	id.Reason = &reason
	req.Members = append(req.Members, id)
	resp, err := req.RequestWith(ctx, g.cluster.Client())
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		for _, mr := range resp.Members {
			if err == nil {
				err = kerr.ErrorForCode(mr.ErrorCode)
			}
		}
	}
	if errors.Is(err, kerr.UnknownMemberID) {
		return nil // gone already
	}
	return err
}
