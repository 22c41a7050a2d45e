package gateway

// LoseEndResponses makes the next n transactions the gateway begins report an error
// from their End if they commit, as when EndTxn's response is lost: committed, outcome unknown to the
// gateway.
func (g *Gateway[S, C, E]) LoseEndResponses(n int32) { g.lostEndResponses.Store(n) }
