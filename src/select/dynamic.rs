//! [`Select`]: a select over a set of cases built at run time (Go's `reflect.Select`).

use std::any::Any;
use std::future::Future;

use super::case::{Case, RecvCase, SendCase};
use super::{Operation, SelectFuture};
use crate::chan::{RecvOperand, SendOperand};
use crate::error::SendError;

/// A case that can also hand its result out type-erased.
trait DynCase: Case {
    fn as_case(&mut self) -> &mut dyn Case;
    fn take_any(&mut self) -> Box<dyn Any + Send>;
}

impl<T: Send + 'static> DynCase for RecvCase<'_, T> {
    fn as_case(&mut self) -> &mut dyn Case {
        self
    }
    fn take_any(&mut self) -> Box<dyn Any + Send> {
        Box::new(self.take_result().expect("chosen case has a result"))
    }
}

impl<T: Send + 'static> DynCase for SendCase<'_, T> {
    fn as_case(&mut self) -> &mut dyn Case {
        self
    }
    fn take_any(&mut self) -> Box<dyn Any + Send> {
        Box::new(self.take_result().expect("chosen case has a result"))
    }
}

/// A select whose cases are added at run time.
///
/// ```
/// let a = parkwatch::chan::<i32>(1);
/// let b = parkwatch::chan::<&str>(1);
/// b.try_send("hi").unwrap();
/// let mut sel = parkwatch::Select::new();
/// let ra = sel.recv(&a);
/// let rb = sel.recv(&b);
/// let chosen = sel.select_blocking();
/// assert_eq!(chosen.index(), rb);
/// assert_ne!(chosen.index(), ra);
/// assert_eq!(chosen.recv::<&str>(), Some("hi"));
/// ```
#[derive(Default)]
pub struct Select<'a> {
    cases: Vec<Box<dyn DynCase + Send + 'a>>,
}

/// Boxed, so the cases stay in place while the vector grows, and a case
/// dropped with the `Select` takes its queue entry back (`Operation`).
impl super::CaseList for Vec<Box<dyn DynCase + Send + '_>> {
    fn with_cases<R>(&mut self, f: impl FnOnce(&mut [&mut dyn Case]) -> R) -> R {
        let mut refs: Vec<&mut dyn Case> = self.iter_mut().map(|c| c.as_case()).collect();
        f(&mut refs)
    }

    fn case_count(&self) -> usize {
        self.len()
    }

    fn try_case(&mut self, i: usize, has_default: bool) -> bool {
        self[i].as_case().try_if_worth(has_default)
    }
}

/// The case a [`Select`] completed, with its result.
pub struct SelectedCase {
    index: usize,
    result: Box<dyn Any + Send>,
}

impl SelectedCase {
    /// The index `Select::recv`/`Select::send` returned for this case.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The received value of a receive case (`None`: closed and drained).
    /// Panics if the case was not a receive of `T`.
    pub fn recv<T: 'static>(self) -> Option<T> {
        *self.result.downcast::<Option<T>>().expect("parkwatch: SelectedCase::recv on a case of another kind or type")
    }

    /// The outcome of a send case. Panics if the case was not a send of `T`.
    pub fn send_result<T: 'static>(self) -> Result<(), SendError<T>> {
        *self
            .result
            .downcast::<Result<(), SendError<T>>>()
            .expect("parkwatch: SelectedCase::send_result on a case of another kind or type")
    }
}

impl<'a> Select<'a> {
    /// An empty select.
    pub fn new() -> Self {
        Select { cases: Vec::new() }
    }

    /// Adds a receive case; returns its index.
    pub fn recv<R: RecvOperand + Sync + ?Sized>(&mut self, r: &'a R) -> usize
    where
        R::Item: Send + 'static,
    {
        self.cases.push(Box::new(r.recv_case()));
        self.cases.len() - 1
    }

    /// Adds a send case of `value`; returns its index. The value is dropped if
    /// another case is chosen.
    pub fn send<S: SendOperand + Sync + ?Sized>(&mut self, s: &'a S, value: S::Item) -> usize
    where
        S::Item: Send + 'static,
    {
        self.cases.push(Box::new(s.send_case(value)));
        self.cases.len() - 1
    }

    fn chosen(&mut self, index: usize) -> SelectedCase {
        SelectedCase { index, result: self.cases[index].take_any() }
    }

    /// Completes a ready case if there is one, without blocking (a select with `default`).
    #[track_caller]
    pub fn try_select(&mut self) -> Option<SelectedCase> {
        let i = super::select_blocking(&mut self.cases, true)?;
        Some(self.chosen(i))
    }

    /// Blocks the OS thread until a case completes. With no cases, blocks forever.
    #[track_caller]
    pub fn select_blocking(&mut self) -> SelectedCase {
        if self.cases.is_empty() {
            super::park_forever_blocking(crate::WaitReason::SelectNoCases);
        }
        let i = super::select_blocking(&mut self.cases, false);
        self.chosen(i.expect("a select without default completes a case"))
    }

    /// Waits until a case completes. With no cases, waits forever.
    #[track_caller]
    pub fn select(&mut self) -> impl Future<Output = SelectedCase> + use<'_, 'a> {
        let site = std::panic::Location::caller();
        async move {
            if self.cases.is_empty() {
                match super::park_forever(crate::WaitReason::SelectNoCases).await {}
            }
            // A `Vec` of boxes is `Unpin`: the boxed cases stay in place
            // whatever happens to the vector.
            let cases = std::pin::Pin::new(&mut self.cases);
            let i = SelectFuture { cases, op: Operation::new(false, site) }.await;
            self.chosen(i.expect("a select without default completes a case"))
        }
    }
}
