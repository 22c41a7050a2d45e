package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/kastor-dev/kastor/projection"
)

// rebuildResult is the last JSON line of `projection rebuild -o json` (and its document
// with --no-wait).
type rebuildResult struct {
	Type           string                   `json:"type"` // "result"
	Request        string                   `json:"request"`
	Status         projection.RequestStatus `json:"status"`
	From           int                      `json:"from,omitempty"`
	To             int                      `json:"to,omitempty"`
	Error          string                   `json:"error,omitempty"`
	ElapsedSeconds float64                  `json:"elapsedSeconds"`
}

// requester names who asks, for the registry's records.
func requester() string {
	name := "kastor"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "kastor CLI (" + name + "@" + host + ")"
}

func newProjectionRebuildCmd(a *app, f *projFlags) *cobra.Command {
	var noWait, cancelBuild bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a projection without downtime: build v+1 beside v, switch when caught up",
		Long: `rebuild asks the application's running instances (projection.Projection) to rebuild the
projection without downtime: they capture the events topics' end offsets, start version
v+1 from the earliest offsets under its own consumer group into a fresh sink while v
keeps serving queries, and switch to v+1 once its applied offsets reach the captured
ends; then they stop v and delete v's group.

The command writes the request to the registry, then shows the progress the instances
report — done/total offsets, rate, ETA — as a bar on a terminal, a line per second
otherwise, or JSON lines with -o json (one {"type":"progress",...} per report and a
final {"type":"result",...}). Ctrl-C stops waiting, not the rebuild.

It fails at once when no instance runs the projection (its serving group has no live
members): nobody could execute the request. For a plain reset of a stopped projection,
see 'kastor projection reset --in-place'.

--cancel abandons the rebuild in progress: v keeps serving, the instances stop building
v+1 and delete its consumer group, and the next rebuild builds v+2, so it never resumes
the abandoned version's group or sink (an application that keeps sinks per version can
drop v+1's).`,
		Example: `  kastor projection rebuild balances -f kastor.yaml
  kastor projection rebuild balances --no-wait
  kastor projection rebuild balances --cancel
  kastor projection rebuild balances -o json | tail -1 | jq .status`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, st, err := a.knownProjection(ctx, f, args[0])
			if err != nil {
				return err
			}
			defer t.adm.Close()
			if cancelBuild {
				return a.cancelRebuild(ctx, t, st, wait)
			}
			if st.Phase == projection.PhaseRebuilding {
				return fmt.Errorf("projection %s is already rebuilding version %d (request %s): follow it with `kastor projection status %s`, or cancel it with `kastor projection rebuild %s --cancel`", st.Name, st.Building, st.RequestID, st.Name, st.Name)
			}
			mctx, cancel := context.WithTimeout(ctx, a.timeout)
			err = requireRunning(mctx, t, st, "rebuild")
			cancel()
			if err != nil {
				return err
			}
			start := time.Now()
			sctx, cancel := context.WithTimeout(ctx, a.timeout)
			req, err := projection.SubmitRequest(sctx, t.c, projection.Request{Kind: projection.RequestRebuild, Namespace: t.ns, Name: st.Name, By: requester()})
			cancel()
			if err != nil {
				return err
			}
			res := rebuildResult{Type: "result", Request: req.ID, Status: req.Status, From: st.Serving}
			if noWait {
				if a.output == "json" {
					return writeJSON(a.stdout, res)
				}
				_, err := fmt.Fprintf(a.stdout, "rebuild of %s requested (request %s); follow it with `kastor projection status %s`\n", st.Name, req.ID, st.Name)
				return err
			}
			if wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			bar := newProgress(a.stdout, a.output == "json")
			if a.output != "json" {
				fmt.Fprintf(a.stdout, "rebuild of %s requested (request %s); v%d keeps serving meanwhile\n", st.Name, req.ID, st.Serving)
			}
			var total int64
			_, err = projection.WatchRegistry(ctx, t.c, func(g *projection.Registry) (bool, error) {
				r, _ := g.Request(t.ns, st.Name, req.ID)
				s, _ := g.State(t.ns, st.Name)
				if s.Phase == projection.PhaseRebuilding && s.RequestID == req.ID {
					if p, ok := g.Progress(t.ns, st.Name); ok && p.Version == s.Building && !p.At.Before(s.StartedAt) {
						total = p.Total
						bar.update(p.Version, p.Done, p.Total)
					}
				}
				if !r.Final() {
					return false, nil
				}
				res.Status, res.From, res.To, res.Error = r.Status, r.From, r.To, r.Error
				if r.Status == projection.StatusDone && total > 0 {
					bar.update(r.To, total, total)
				}
				return true, nil
			})
			bar.finish()
			res.ElapsedSeconds = time.Since(start).Seconds()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
					return fmt.Errorf("stopped waiting for rebuild request %s of %s (the rebuild goes on in the application): %w", req.ID, st.Name, err)
				}
				return err
			}
			if a.output == "json" {
				b, _ := json.Marshal(res)
				fmt.Fprintf(a.stdout, "%s\n", b)
			} else if res.Status == projection.StatusDone {
				fmt.Fprintf(a.stdout, "switched %s from v%d to v%d in %s; v%d's consumer group is retired once its readers stopped\n",
					st.Name, res.From, res.To, time.Since(start).Round(100*time.Millisecond), res.From)
			}
			if res.Status == projection.StatusFailed {
				return fmt.Errorf("rebuild of %s failed: %s", st.Name, res.Error)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "write the request and return without waiting for the switch")
	cmd.Flags().BoolVar(&cancelBuild, "cancel", false, "cancel the rebuild in progress instead (v keeps serving)")
	cmd.Flags().DurationVar(&wait, "wait-timeout", 0, "stop waiting after this long (0: until the switch or Ctrl-C)")
	return cmd
}

// cancelRebuild asks the running instances to abandon the rebuild in progress and waits
// for their answer.
func (a *app) cancelRebuild(ctx context.Context, t *target, st projection.State, wait time.Duration) error {
	if st.Phase != projection.PhaseRebuilding {
		return fmt.Errorf("projection %s is not rebuilding (v%d serves, phase %s): nothing to cancel", st.Name, st.Serving, st.Phase)
	}
	mctx, cancel := context.WithTimeout(ctx, a.timeout)
	err := requireRunning(mctx, t, st, "cancellation")
	cancel()
	if err != nil {
		return err
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, a.timeout)
	req, err := projection.SubmitRequest(sctx, t.c, projection.Request{Kind: projection.RequestCancel, Namespace: t.ns, Name: st.Name, By: requester()})
	cancel()
	if err != nil {
		return err
	}
	wctx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	res := rebuildResult{Type: "result", Request: req.ID, From: st.Serving, To: st.Building}
	_, err = projection.WatchRegistry(wctx, t.c, func(g *projection.Registry) (bool, error) {
		r, _ := g.Request(t.ns, st.Name, req.ID)
		if !r.Final() {
			return false, nil
		}
		res.Status, res.Error = r.Status, r.Error
		return true, nil
	})
	res.ElapsedSeconds = time.Since(start).Seconds()
	if err != nil {
		return fmt.Errorf("stopped waiting for cancel request %s of %s: %w", req.ID, st.Name, err)
	}
	if res.Status == projection.StatusFailed {
		return fmt.Errorf("cancelling the rebuild of %s failed: %s", st.Name, res.Error)
	}
	if a.output == "json" {
		return writeJSON(a.stdout, res)
	}
	_, err = fmt.Fprintf(a.stdout, "cancelled the rebuild of %s v%d; v%d keeps serving, and the next rebuild builds v%d\n", st.Name, st.Building, st.Serving, st.Building+1)
	return err
}
