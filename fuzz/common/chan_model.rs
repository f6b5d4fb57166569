//! Random channel / select / close programs, run on one thread against a
//! reference model with Go's semantics (a `VecDeque` buffer and FIFO queues
//! of parked senders and receivers per channel).
//!
//! A program is a sequence of operations decoded from a [`Source`]:
//! `try_send`, `try_recv`, `close`, a select with `default` (`Select::try_select`),
//! and *blocking* operations — a single `send`/`recv` or a `Select` of 2–3
//! cases — started by polling their future once (they complete or park), then
//! polled again or cancelled (dropped) later by other steps. Channels have
//! capacities 0..=2; one channel is nil. Values are unique, so a value
//! delivered twice or to the wrong party is caught.
//!
//! Checked at every step: each non-blocking result is exactly the model's;
//! a select picks a case the model says is ready (any of them: Go picks at
//! random) and gets the model's outcome for it; a parked operation completes
//! exactly when the model completes it, with the same case and outcome, and
//! its waker was woken; cancelling an operation that a counterpart already
//! completed gives a received value back (to the next parked receiver, else
//! the head of the buffer: nothing is lost); `len` and `is_closed` agree.

#![allow(dead_code, clippy::needless_range_loop)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parkwatch::{Chan, CloseError, TryRecvError, TrySendError};

use super::snapshot_gen::Source;

/// Index of the nil channel.
const NIL: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseOp {
    Recv(usize),
    Send(usize, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Received(Option<u64>),
    Sent,
    SendClosed(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MState {
    /// Parked in the queues of its channels.
    Parked,
    /// A counterpart completed case `.0`; not yet observed by a poll.
    Completed(usize, Outcome),
    /// Observed or cancelled.
    Gone,
}

struct MChan {
    cap: usize,
    nil: bool,
    buf: VecDeque<u64>,
    closed: bool,
    sendq: VecDeque<(usize, usize)>,
    recvq: VecDeque<(usize, usize)>,
}

struct MOp {
    cases: Vec<CaseOp>,
    state: MState,
}

/// The reference model.
struct Model {
    chans: Vec<MChan>,
    ops: Vec<MOp>,
}

impl Model {
    fn live(&self, (op, _): (usize, usize)) -> bool {
        self.ops[op].state == MState::Parked
    }

    fn pop_live(&mut self, ch: usize, send: bool) -> Option<(usize, usize)> {
        loop {
            let q = if send { &mut self.chans[ch].sendq } else { &mut self.chans[ch].recvq };
            let e = q.pop_front()?;
            if self.ops[e.0].state == MState::Parked {
                return Some(e);
            }
        }
    }

    fn has_live(&self, ch: usize, send: bool) -> bool {
        let q = if send { &self.chans[ch].sendq } else { &self.chans[ch].recvq };
        q.iter().any(|&e| self.live(e))
    }

    fn complete(&mut self, (op, case): (usize, usize), out: Outcome) {
        self.ops[op].state = MState::Completed(case, out);
    }

    /// Could `c` complete now?
    fn ready(&self, c: CaseOp) -> bool {
        match c {
            CaseOp::Recv(i) => {
                let ch = &self.chans[i];
                !ch.nil && (!ch.buf.is_empty() || ch.closed || self.has_live(i, true))
            }
            CaseOp::Send(i, _) => {
                let ch = &self.chans[i];
                !ch.nil && (ch.closed || self.has_live(i, false) || ch.buf.len() < ch.cap)
            }
        }
    }

    /// Completes `c` now (it must be ready).
    fn apply(&mut self, c: CaseOp) -> Outcome {
        match c {
            CaseOp::Recv(i) => {
                if let Some(v) = self.chans[i].buf.pop_front() {
                    // The first parked sender's value joins the buffer if
                    // that leaves it within its capacity (values given back
                    // by cancelled receives can fill it past that: the
                    // sender then waits until a receive takes its value).
                    let room = self.chans[i].buf.len() < self.chans[i].cap;
                    if let Some(s) = room.then(|| self.pop_live(i, true)).flatten() {
                        let CaseOp::Send(_, sv) = self.ops[s.0].cases[s.1] else { unreachable!() };
                        self.chans[i].buf.push_back(sv);
                        self.complete(s, Outcome::Sent);
                    }
                    Outcome::Received(Some(v))
                } else if let Some(s) = self.pop_live(i, true) {
                    let CaseOp::Send(_, sv) = self.ops[s.0].cases[s.1] else { unreachable!() };
                    self.complete(s, Outcome::Sent);
                    Outcome::Received(Some(sv))
                } else {
                    assert!(self.chans[i].closed, "apply of a receive that is not ready");
                    Outcome::Received(None)
                }
            }
            CaseOp::Send(i, v) => {
                if self.chans[i].closed {
                    Outcome::SendClosed(v)
                } else if let Some(r) = self.pop_live(i, false) {
                    self.complete(r, Outcome::Received(Some(v)));
                    Outcome::Sent
                } else {
                    assert!(self.chans[i].buf.len() < self.chans[i].cap, "apply of a send that is not ready");
                    self.chans[i].buf.push_back(v);
                    Outcome::Sent
                }
            }
        }
    }

    fn close(&mut self, i: usize) -> Result<(), CloseError> {
        let ch = &mut self.chans[i];
        if ch.nil {
            return Err(CloseError::Nil);
        }
        if ch.closed {
            return Err(CloseError::AlreadyClosed);
        }
        ch.closed = true;
        let recvs = std::mem::take(&mut ch.recvq);
        let sends = std::mem::take(&mut ch.sendq);
        for e in recvs {
            if self.live(e) {
                self.complete(e, Outcome::Received(None));
            }
        }
        for e in sends {
            if self.live(e) {
                let CaseOp::Send(_, v) = self.ops[e.0].cases[e.1] else { unreachable!() };
                self.complete(e, Outcome::SendClosed(v));
            }
        }
        Ok(())
    }

    fn park(&mut self, op: usize) {
        for (k, c) in self.ops[op].cases.clone().into_iter().enumerate() {
            match c {
                CaseOp::Recv(i) if !self.chans[i].nil => self.chans[i].recvq.push_back((op, k)),
                CaseOp::Send(i, _) if !self.chans[i].nil => self.chans[i].sendq.push_back((op, k)),
                _ => {}
            }
        }
        self.ops[op].state = MState::Parked;
    }

    /// The operation is dropped.
    fn cancel(&mut self, op: usize) {
        let st = self.ops[op].state;
        self.ops[op].state = MState::Gone;
        if let MState::Completed(case, Outcome::Received(Some(v))) = st {
            let CaseOp::Recv(i) = self.ops[op].cases[case] else { unreachable!() };
            // Given back: to the next parked receiver, else the head of the buffer.
            if let Some(r) = self.pop_live(i, false) {
                self.complete(r, Outcome::Received(Some(v)));
            } else {
                self.chans[i].buf.push_front(v);
            }
        }
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type OpFuture<'a> = Pin<Box<dyn Future<Output = (usize, Outcome)> + 'a>>;

struct RealOp<'a> {
    fut: OpFuture<'a>,
    flag: Arc<Flag>,
}

fn send_outcome(r: Result<(), parkwatch::SendError<u64>>) -> Outcome {
    match r {
        Ok(()) => Outcome::Sent,
        Err(e) => Outcome::SendClosed(e.0),
    }
}

fn make_future<'a>(chans: &'a [Chan<u64>], cases: &[CaseOp]) -> OpFuture<'a> {
    match *cases {
        [CaseOp::Recv(i)] => {
            let c = &chans[i];
            Box::pin(async move { (0, Outcome::Received(c.recv().await)) })
        }
        [CaseOp::Send(i, v)] => {
            let c = &chans[i];
            Box::pin(async move { (0, send_outcome(c.send(v).await)) })
        }
        _ => {
            let cases = cases.to_vec();
            Box::pin(async move {
                let mut sel = parkwatch::Select::new();
                for c in &cases {
                    match *c {
                        CaseOp::Recv(i) => sel.recv(&chans[i]),
                        CaseOp::Send(i, v) => sel.send(&chans[i], v),
                    };
                }
                let chosen = sel.select().await;
                let i = chosen.index();
                let out = match cases[i] {
                    CaseOp::Recv(_) => Outcome::Received(chosen.recv::<u64>()),
                    CaseOp::Send(..) => send_outcome(chosen.send_result::<u64>()),
                };
                (i, out)
            })
        }
    }
}

fn poll_op(op: &mut RealOp<'_>) -> Poll<(usize, Outcome)> {
    let waker = Waker::from(op.flag.clone());
    op.fut.as_mut().poll(&mut Context::from_waker(&waker))
}

/// Runs one program; `Err` describes the first disagreement, with the steps
/// that led to it. `max_steps` bounds the program (a fuzzer's input ends it earlier).
pub fn run_program(src: &mut impl Source, max_steps: usize) -> Result<usize, String> {
    let caps: Vec<usize> = (0..3).map(|_| src.below(3) as usize).collect();
    let chans: Vec<Chan<u64>> =
        caps.iter().map(|&c| parkwatch::chan::<u64>(c)).chain(std::iter::once(Chan::nil())).collect();
    let mut model = Model {
        chans: (0..4)
            .map(|i| MChan {
                cap: caps.get(i).copied().unwrap_or(0),
                nil: i == NIL,
                buf: VecDeque::new(),
                closed: false,
                sendq: VecDeque::new(),
                recvq: VecDeque::new(),
            })
            .collect(),
        ops: Vec::new(),
    };
    let mut real: Vec<Option<RealOp<'_>>> = Vec::new();
    let mut log: Vec<String> = vec![format!("caps {caps:?}")];
    let mut next_value = 1u64;
    let fail = |log: &[String], what: String| -> String {
        let tail = log.len().saturating_sub(40);
        format!("{what}\nsteps (last 40):\n  {}", log[tail..].join("\n  "))
    };

    let chan_index = |src: &mut dyn FnMut(u64) -> u64| -> usize {
        // The nil channel is picked rarely.
        let r = src(16);
        if r == 15 {
            NIL
        } else {
            (r % 3) as usize
        }
    };

    let mut steps = 0;
    while steps < max_steps {
        steps += 1;
        let mut below = |n: u64| src.below(n);
        let kind = below(16);
        match kind {
            // try_send
            0 | 1 => {
                let i = chan_index(&mut below);
                let v = next_value;
                next_value += 1;
                log.push(format!("try_send(c{i}, {v})"));
                let got = chans[i].try_send(v);
                let c = CaseOp::Send(i, v);
                let want = if model.ready(c) {
                    match model.apply(c) {
                        Outcome::Sent => Ok(()),
                        Outcome::SendClosed(v) => Err(TrySendError::Closed(v)),
                        o => unreachable!("{o:?}"),
                    }
                } else {
                    Err(TrySendError::Full(v))
                };
                if got != want {
                    return Err(fail(&log, format!("try_send: got {got:?}, model {want:?}")));
                }
            }
            // try_recv
            2 | 3 => {
                let i = chan_index(&mut below);
                log.push(format!("try_recv(c{i})"));
                let got = chans[i].try_recv();
                let c = CaseOp::Recv(i);
                let want = if model.ready(c) {
                    match model.apply(c) {
                        Outcome::Received(Some(v)) => Ok(v),
                        Outcome::Received(None) => Err(TryRecvError::Closed),
                        o => unreachable!("{o:?}"),
                    }
                } else {
                    Err(TryRecvError::Empty)
                };
                if got != want {
                    return Err(fail(&log, format!("try_recv: got {got:?}, model {want:?}")));
                }
            }
            // close (rarer)
            4 => {
                if below(3) != 0 {
                    continue;
                }
                let i = chan_index(&mut below);
                log.push(format!("close(c{i})"));
                let got = chans[i].close();
                let want = model.close(i);
                if got != want {
                    return Err(fail(&log, format!("close: got {got:?}, model {want:?}")));
                }
            }
            // select with default
            5 => {
                let cases = gen_cases(&mut below, &mut next_value, chan_index);
                log.push(format!("try_select({cases:?})"));
                let mut sel = parkwatch::Select::new();
                for c in &cases {
                    match *c {
                        CaseOp::Recv(i) => sel.recv(&chans[i]),
                        CaseOp::Send(i, v) => sel.send(&chans[i], v),
                    };
                }
                let got = sel.try_select();
                let ready: Vec<usize> = (0..cases.len()).filter(|&k| model.ready(cases[k])).collect();
                match got {
                    None if ready.is_empty() => {}
                    None => {
                        return Err(fail(&log, format!("try_select: default taken, model has ready cases {ready:?}")))
                    }
                    Some(chosen) => {
                        let k = chosen.index();
                        if !ready.contains(&k) {
                            return Err(fail(&log, format!("try_select: case {k} chosen, model ready {ready:?}")));
                        }
                        let out = match cases[k] {
                            CaseOp::Recv(_) => Outcome::Received(chosen.recv::<u64>()),
                            CaseOp::Send(..) => send_outcome(chosen.send_result::<u64>()),
                        };
                        let want = model.apply(cases[k]);
                        if out != want {
                            return Err(fail(&log, format!("try_select case {k}: got {out:?}, model {want:?}")));
                        }
                    }
                }
            }
            // start a blocking operation
            6..=9 => {
                let cases = if below(2) == 0 {
                    vec![gen_case(&mut below, &mut next_value, chan_index)]
                } else {
                    gen_cases(&mut below, &mut next_value, chan_index)
                };
                let id = model.ops.len();
                log.push(format!("start op{id} {cases:?}"));
                let mut op = RealOp { fut: make_future(&chans, &cases), flag: Arc::new(Flag(AtomicBool::new(false))) };
                model.ops.push(MOp { cases: cases.clone(), state: MState::Gone });
                let ready: Vec<usize> = (0..cases.len()).filter(|&k| model.ready(cases[k])).collect();
                match poll_op(&mut op) {
                    Poll::Ready((k, out)) => {
                        if !ready.contains(&k) {
                            return Err(fail(
                                &log,
                                format!("op{id} completed case {k} at once, model ready {ready:?}"),
                            ));
                        }
                        let want = model.apply(cases[k]);
                        if out != want {
                            return Err(fail(&log, format!("op{id} case {k}: got {out:?}, model {want:?}")));
                        }
                        real.push(None);
                    }
                    Poll::Pending => {
                        if !ready.is_empty() {
                            return Err(fail(&log, format!("op{id} parked, model has ready cases {ready:?}")));
                        }
                        model.park(id);
                        real.push(Some(op));
                    }
                }
            }
            // poll a parked operation
            10..=12 => {
                let Some(id) = pick_live(&real, &mut below) else { continue };
                log.push(format!("poll op{id}"));
                let op = real[id].as_mut().unwrap();
                let woken = op.flag.0.swap(false, Ordering::SeqCst);
                let got = poll_op(op);
                match (model.ops[id].state, got) {
                    (MState::Parked, Poll::Pending) => {}
                    (MState::Completed(case, out), Poll::Ready((k, o))) => {
                        if (case, out) != (k, o) {
                            return Err(fail(&log, format!("op{id}: got case {k} {o:?}, model case {case} {out:?}")));
                        }
                        if !woken {
                            return Err(fail(&log, format!("op{id} completed but its waker was never woken")));
                        }
                        model.ops[id].state = MState::Gone;
                        real[id] = None;
                    }
                    (st, got) => return Err(fail(&log, format!("op{id}: got {got:?}, model {st:?}"))),
                }
            }
            // cancel a parked operation
            13 | 14 => {
                let Some(id) = pick_live(&real, &mut below) else { continue };
                log.push(format!("cancel op{id} (model {:?})", model.ops[id].state));
                real[id] = None;
                model.cancel(id);
            }
            // len / is_closed
            _ => {
                for i in 0..4 {
                    let (len, closed) = (chans[i].len(), chans[i].is_closed());
                    let m = &model.chans[i];
                    if len != m.buf.len() || closed != m.closed {
                        return Err(fail(
                            &log,
                            format!("c{i}: len {len} closed {closed}, model len {} closed {}", m.buf.len(), m.closed),
                        ));
                    }
                }
            }
        }
    }
    // Cancel what is left, then drain every channel against the model.
    for id in 0..real.len() {
        if real[id].is_some() {
            log.push(format!("final cancel op{id} (model {:?})", model.ops[id].state));
            real[id] = None;
            model.cancel(id);
        }
    }
    for i in 0..3 {
        loop {
            let got = chans[i].try_recv();
            let c = CaseOp::Recv(i);
            let want = if model.ready(c) {
                match model.apply(c) {
                    Outcome::Received(Some(v)) => Ok(v),
                    _ => Err(TryRecvError::Closed),
                }
            } else {
                Err(TryRecvError::Empty)
            };
            if got != want {
                return Err(fail(&log, format!("final drain of c{i}: got {got:?}, model {want:?}")));
            }
            if got.is_err() {
                break;
            }
        }
    }
    Ok(steps)
}

fn gen_case(
    below: &mut dyn FnMut(u64) -> u64,
    next: &mut u64,
    chan: impl Fn(&mut dyn FnMut(u64) -> u64) -> usize,
) -> CaseOp {
    let i = chan(below);
    if below(2) == 0 {
        CaseOp::Recv(i)
    } else {
        let v = *next;
        *next += 1;
        CaseOp::Send(i, v)
    }
}

fn gen_cases(
    below: &mut dyn FnMut(u64) -> u64,
    next: &mut u64,
    chan: impl Fn(&mut dyn FnMut(u64) -> u64) -> usize + Copy,
) -> Vec<CaseOp> {
    let n = 2 + below(2) as usize;
    (0..n).map(|_| gen_case(below, next, chan)).collect()
}

fn pick_live(real: &[Option<RealOp<'_>>], below: &mut dyn FnMut(u64) -> u64) -> Option<usize> {
    let live: Vec<usize> = (0..real.len()).filter(|&i| real[i].is_some()).collect();
    if live.is_empty() {
        return None;
    }
    Some(live[below(live.len() as u64) as usize])
}
