//! Seeded random requests against every handler on a real shard: no input may panic,
//! and every answer must be a well-framed response. `FUZZ_SEED=n` replays a run,
//! `FUZZ_CASES=n` sets its length.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::protocol::{ApiKey, RequestHeader, APIS};

/// A byte that is often a small count, a length, -1 or 0: it gets decoders further
/// than uniform noise does.
fn plausible_byte(rng: &mut ChaCha8Rng) -> u8 {
    match rng.gen_range(0..6) {
        0 | 1 => 0,
        2 => rng.gen_range(1..4),
        3 => 0xff,
        4 => b't',
        _ => rng.gen(),
    }
}

#[test]
fn random_requests_never_panic_and_answers_are_framed() {
    let seed = corelog_engine::testing::seed("FUZZ_SEED");
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    println!("FUZZ_SEED={seed} FUZZ_CASES={cases}");
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(super::testkit::config(dir.path()));
    let answered = corelog_engine::testing::run_on_executor(move || async move {
        let shard = super::testkit::shard(config).await;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut answered = 0;
        for _ in 0..cases {
            let spec = APIS[rng.gen_range(0..APIS.len())];
            // Admin changes would create thousands of logs from random counts.
            if matches!(spec.key, ApiKey::CreateTopics | ApiKey::CreatePartitions) {
                continue;
            }
            let version = rng.gen_range(spec.min - 1..=spec.max + 1);
            let header = RequestHeader {
                api_key: spec.key as i16,
                api_version: version,
                correlation_id: 1,
                client_id: None,
                flexible: spec.is_flexible(version),
                client_host: None,
            };
            let len = rng.gen_range(0..200);
            let body: BytesMut = (0..len).map(|_| plausible_byte(&mut rng)).collect();
            // Long polls may legitimately wait: bound each call, a timeout is not a bug.
            let call = async {
                match super::handle(&shard, &header, body, &Default::default()).await {
                    Ok(answer) => Some(answer.wait().await),
                    Err(_) => None,
                }
            };
            let timed =
                glommio::timer::timeout(Duration::from_millis(20), async { Ok(call.await) });
            if let Ok(Some(Some(parts))) = timed.await {
                let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                let size = i32::from_be_bytes(all[..4].try_into().unwrap());
                assert_eq!(size as usize, all.len() - 4, "seed {seed}: bad framing");
                assert_eq!(
                    &all[4..8],
                    &1i32.to_be_bytes(),
                    "seed {seed}: correlation id"
                );
                answered += 1;
            }
        }
        shard.close_all().await;
        answered
    });
    println!("{answered} of {cases} random requests answered");
    // Some random bodies must get through decoding, or the test checks nothing.
    assert!(
        answered > 50,
        "seed {seed}: only {answered} requests answered"
    );
}
