package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device (a terminal), without a
// dependency: a progress bar redraws itself there, and prints plain lines elsewhere.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine is one JSON line of a progress report (`-o json`).
type progressLine struct {
	Type       string  `json:"type"` // "progress"
	Version    int     `json:"version"`
	Done       int64   `json:"done"`
	Total      int64   `json:"total"`
	Rate       float64 `json:"rate"`                 // offsets per second since the first report
	ETASeconds float64 `json:"etaSeconds,omitempty"` // 0 when unknown or done
}

// progress renders done/total offsets with rate and ETA: a bar redrawn in place on a
// terminal, a line per second otherwise, or JSON lines.
type progress struct {
	w      io.Writer
	json   bool
	tty    bool
	first  time.Time
	from   int64
	last   time.Time
	drawn  bool
	now    func() time.Time
	lastDo int64
}

func newProgress(w io.Writer, asJSON bool) *progress {
	return &progress{w: w, json: asJSON, tty: !asJSON && isTerminal(w), now: time.Now}
}

func (p *progress) update(version int, done, total int64) {
	now := p.now()
	if p.first.IsZero() {
		p.first, p.from = now, done
	}
	rate := 0.0
	if el := now.Sub(p.first).Seconds(); el > 0 {
		rate = float64(done-p.from) / el
	}
	eta := 0.0
	if rate > 0 && total > done {
		eta = float64(total-done) / rate
	}
	switch {
	case p.json:
		if done == p.lastDo && p.drawn {
			return
		}
		b, _ := json.Marshal(progressLine{Type: "progress", Version: version, Done: done, Total: total, Rate: rate, ETASeconds: eta})
		fmt.Fprintf(p.w, "%s\n", b)
	case p.tty:
		fmt.Fprintf(p.w, "\r%s", progressText(version, done, total, rate, eta, true))
	default:
		if p.drawn && now.Sub(p.last) < time.Second && done < total {
			return
		}
		fmt.Fprintln(p.w, progressText(version, done, total, rate, eta, false))
	}
	p.drawn, p.last, p.lastDo = true, now, done
}

// finish ends the bar's line on a terminal.
func (p *progress) finish() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func progressText(version int, done, total int64, rate, eta float64, bar bool) string {
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(min(done, total)) / float64(total)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "building v%d ", version)
	if bar {
		const width = 30
		n := int(pct / 100 * width)
		b.WriteString("[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "] ")
	}
	fmt.Fprintf(&b, "%d/%d offsets %3.0f%%  %.0f/s", done, total, pct, rate)
	if eta > 0 {
		fmt.Fprintf(&b, "  ETA %s", (time.Duration(eta) * time.Second).Round(time.Second))
	}
	if bar {
		b.WriteString("   ") // clears leftovers of a longer previous line
	}
	return b.String()
}
