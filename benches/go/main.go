// Go counterpart of benches/channels.rs: the same scenarios with goroutines,
// GOMAXPROCS=2, printing one line per scenario:
//
//	go spsc/bounded(0) 123.4
//
// (ns per message, median of the runs). Stdlib only, Go 1.19 compatible.
//
// Usage: go run benches/go/main.go [messages] [runs] [warmup|nowarmup] [filter]
//
// filter selects the scenarios whose name contains it, or with a leading
// "=" the one scenario of exactly that name. The Rust harness
// (benches/channels.rs) builds this program and runs it once per measured
// run, as `main N 1 warmup =spsc/bounded(0)`.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type scenario struct {
	pattern string // spsc, mpsc, mpmc, select2
	cap     int
}

func (s scenario) name() string { return fmt.Sprintf("%s/bounded(%d)", s.pattern, s.cap) }

// shape gives (producers, consumers).
func (s scenario) shape() (uint64, uint64) {
	switch s.pattern {
	case "spsc":
		return 1, 1
	case "mpsc":
		return 4, 1
	case "mpmc":
		return 4, 4
	default: // select2: one producer per channel, one selecting receiver
		return 2, 1
	}
}

type tally struct{ count, sum, a, b uint64 }

// run sends 1..=n in all and returns the elapsed time; it panics if the
// received count or sum (or, for select2, the count per channel) is wrong.
func run(s scenario, n uint64) time.Duration {
	np, nc := s.shape()
	chans := []chan uint64{make(chan uint64, s.cap)}
	if s.pattern == "select2" {
		chans = append(chans, make(chan uint64, s.cap))
	}
	per := n / np
	var start, ready sync.WaitGroup
	start.Add(1)
	ready.Add(int(np + nc))
	var producers sync.WaitGroup
	for p := uint64(0); p < np; p++ {
		c := chans[0]
		if s.pattern == "select2" {
			c = chans[p]
		}
		producers.Add(1)
		go func(p uint64, c chan uint64) {
			defer producers.Done()
			ready.Done()
			start.Wait()
			for v := p*per + 1; v <= (p+1)*per; v++ {
				c <- v
			}
		}(p, c)
	}
	results := make(chan tally, nc)
	perc := n / nc
	for i := uint64(0); i < nc; i++ {
		go func() {
			ready.Done()
			start.Wait()
			var t tally
			if s.pattern == "select2" {
				a, b := chans[0], chans[1]
				for k := uint64(0); k < perc; k++ {
					select {
					case v := <-a:
						t.a++
						t.sum += v
					case v := <-b:
						t.b++
						t.sum += v
					}
				}
			} else {
				c := chans[0]
				for k := uint64(0); k < perc; k++ {
					t.sum += <-c
				}
			}
			t.count = perc
			results <- t
		}()
	}
	ready.Wait()
	t0 := time.Now()
	start.Done()
	var total tally
	for i := uint64(0); i < nc; i++ {
		t := <-results
		total.count += t.count
		total.sum += t.sum
		total.a += t.a
		total.b += t.b
	}
	elapsed := time.Since(t0)
	producers.Wait()
	if total.count != n || total.sum != n*(n+1)/2 {
		panic(fmt.Sprintf("go %s: received %d summing to %d, expected %d summing to %d",
			s.name(), total.count, total.sum, n, n*(n+1)/2))
	}
	if s.pattern == "select2" && (total.a != n/2 || total.b != n/2) {
		panic(fmt.Sprintf("go %s: select took %d from a and %d from b", s.name(), total.a, total.b))
	}
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(2)
	n, runs, warmup, filter := uint64(200000), 5, true, ""
	args := os.Args[1:]
	if len(args) > 0 {
		v, err := strconv.ParseUint(strings.ReplaceAll(args[0], "_", ""), 10, 64)
		if err != nil {
			panic(err)
		}
		n = v
	}
	if len(args) > 1 {
		v, err := strconv.Atoi(args[1])
		if err != nil {
			panic(err)
		}
		runs = v
	}
	if len(args) > 2 {
		warmup = args[2] != "nowarmup"
	}
	if len(args) > 3 {
		filter = args[3]
	}
	if runs < 1 {
		runs = 1
	}
	n = n / 4 * 4
	if n == 0 {
		n = 4
	}
	for _, p := range []string{"spsc", "mpsc", "mpmc", "select2"} {
		for _, c := range []int{0, 1, 1024} {
			s := scenario{p, c}
			if strings.HasPrefix(filter, "=") {
				if s.name() != filter[1:] {
					continue
				}
			} else if filter != "" && !strings.Contains(s.name(), filter) {
				continue
			}
			if warmup {
				w := n / 10 / 4 * 4
				if w < 1000 {
					w = 1000
				}
				run(s, w)
			}
			ns := make([]float64, 0, runs)
			for r := 0; r < runs; r++ {
				ns = append(ns, float64(run(s, n).Nanoseconds())/float64(n))
			}
			sort.Float64s(ns)
			fmt.Printf("go %s %.1f\n", s.name(), ns[len(ns)/2])
		}
	}
}
