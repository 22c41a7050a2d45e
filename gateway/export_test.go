package gateway

import "time"

// LoseEndResponses makes the next n transactions the gateway begins report an error
// from their End if they commit, as when EndTxn's response is lost: committed, outcome unknown to the
// gateway.
func (g *Gateway[S, C, E]) LoseEndResponses(n int32) { g.lostEndResponses.Store(n) }

// HoldBeforeEnd makes every transaction wait d with its records written before it ends,
// so that a kill lands inside an open transaction.
func (g *Gateway[S, C, E]) HoldBeforeEnd(d time.Duration) { g.holdBeforeEnd.Store(int64(d)) }

// FailRestores makes every restore of a shard fail with fault(p) before it reads, while
// fault returns an error for p.
func (g *Gateway[S, C, E]) FailRestores(fault func(p int32) error) { g.restoreFault.Store(&fault) }
