//! A tiny deterministic PRNG: xorshift64* seeded through splitmix64.

use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and a stream (who is drawing: slot,
    /// generation, thread index...), independent of other streams.
    pub fn new(seed: u64, stream: &[u64]) -> Self {
        let mut state = splitmix(seed);
        for &part in stream {
            state = splitmix(state ^ splitmix(part));
        }
        Self(if state == 0 { 0x9E37_79B9_7F4A_7C15 } else { state })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `0..n` as an index.
    pub fn index(&mut self, n: usize) -> usize {
        // usize -> u64 is lossless on every supported platform.
        usize::try_from(self.below(n as u64)).expect("an index below a usize fits a usize")
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `lo..=hi` microseconds.
    pub fn micros(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_micros(lo + self.below(hi - lo + 1))
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

fn splitmix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
