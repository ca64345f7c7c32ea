//! A request frame (without its size prefix) through header decoding and its API's
//! handler on a real shard; see `corelog::fuzzing`. Any panic is a finding.
#![no_main]

use corelog::fuzzing::RequestTarget;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static TARGET: RequestTarget = RequestTarget::new();
}

fuzz_target!(|frame: &[u8]| {
    TARGET.with(|t| t.frame(frame));
});
