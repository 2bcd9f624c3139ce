//! `Session::run` performs no heap allocation: a counting global allocator watches a run
//! of a model that uses every op family, with im2col scratch, sparse and quantized weights.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lopper_runtime::{Model, Session};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `ptr` came from `System` with this layout; same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn run_does_not_allocate() {
    let model = Model::from_vec(common::tiny_cnn()).unwrap();
    let mut session = Session::new(&model).unwrap();
    let input: Vec<f32> = (0..3 * 8 * 8).map(|i| (i % 7) as f32 / 7.0).collect();

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    session.set_input(0, &input).unwrap();
    session.run();
    session.run();
    let sum: f32 = session.output(0).unwrap().iter().sum();
    let after = ALLOCATIONS.load(Ordering::SeqCst);

    assert_eq!(
        after - before,
        0,
        "run() allocated {} times",
        after - before
    );
    // The output is a softmax: it must sum to one, so the run really computed something.
    assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
}
