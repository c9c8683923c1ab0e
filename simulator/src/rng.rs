//! The simulator's own PRNG, written out here rather than taken from a
//! crate so that a dependency upgrade can never change a recording made
//! with a given seed: reproducibility is part of the simulator's contract.
//!
//! Xoshiro256++ seeded through SplitMix64. Every independent part of the
//! stream (each DOM, the trigger, the log, the faults) gets its own
//! generator derived from the seed and a stream key, so turning a fault on
//! or changing the trigger rate leaves every other byte of the stream as
//! it was.

use std::sync::OnceLock;

/// SplitMix64 step: used to expand seeds, and as a stateless hash.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The generator of stream `key` for `seed`.
    pub fn new(seed: u64, key: u64) -> Rng {
        let mut x = splitmix(seed ^ splitmix(key.wrapping_add(0x5EED)));
        let mut s = [0u64; 4];
        for word in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *word = splitmix(x);
        }
        // The all-zero state is the one state xoshiro cannot leave.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in 0..n (n > 0); the multiply-shift bias is far
    /// below anything a monitor could see.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal by Box–Muller (for the rare draws; the per-PMT hot
    /// path uses [`Normals`]).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// Poisson by inversion for small means and a rounded normal for large
    /// ones (the counts of a 100 ms window are in the hundreds).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            let x = mean + mean.sqrt() * self.normal();
            return x.round().max(0.0) as u32;
        }
        let limit = (-mean).exp();
        let mut product = self.f64();
        let mut n = 0;
        while product > limit {
            product *= self.f64();
            n += 1;
        }
        n
    }

    /// A unit vector, uniform on the sphere.
    pub fn direction(&mut self) -> [f64; 3] {
        let z = self.uniform(-1.0, 1.0);
        let phi = self.uniform(0.0, std::f64::consts::TAU);
        let rho = (1.0 - z * z).sqrt();
        [rho * phi.cos(), rho * phi.sin(), z]
    }
}

/// Standard normal deviates from a quantile table, six per `u64`: the
/// per-PMT noise of every DOM in every timeslice needs tens of millions of
/// them per second of ARCA data, where Box–Muller would dominate the cost.
/// The table's 1024 quantiles reach ±3.3σ, enough for rate noise.
pub struct Normals {
    bits: u64,
    left: u32,
}

const TABLE_BITS: u32 = 10;

fn quantile_table() -> &'static [f32; 1 << TABLE_BITS] {
    static TABLE: OnceLock<[f32; 1 << TABLE_BITS]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0f32; 1 << TABLE_BITS];
        let n = table.len() as f64;
        for (i, q) in table.iter_mut().enumerate() {
            *q = inverse_normal_cdf((i as f64 + 0.5) / n) as f32;
        }
        table
    })
}

/// Acklam's rational approximation (relative error < 1.2e-9).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

impl Normals {
    pub fn new() -> Normals {
        Normals { bits: 0, left: 0 }
    }

    pub fn next(&mut self, rng: &mut Rng) -> f32 {
        if self.left == 0 {
            self.bits = rng.next_u64();
            self.left = 64 / TABLE_BITS;
        }
        let index = (self.bits & ((1 << TABLE_BITS) - 1)) as usize;
        self.bits >>= TABLE_BITS;
        self.left -= 1;
        quantile_table()[index]
    }
}

impl Default for Normals {
    fn default() -> Normals {
        Normals::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    /// The published test vectors of the two algorithms (Vigna's reference
    /// C code): a change here would change every recording of every seed.
    #[test]
    fn reference_vectors() {
        let mut x: u64 = 1_234_567;
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(splitmix(x));
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        }
        assert_eq!(
            out,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821
            ]
        );
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let out: Vec<u64> = (0..10).map(|_| rng.next_u64()).collect();
        assert_eq!(
            out,
            [
                41_943_041,
                58_720_359,
                3_588_806_011_781_223,
                3_591_011_842_654_386,
                9_228_616_714_210_784_205,
                9_973_669_472_204_895_162,
                14_011_001_112_246_962_877,
                12_406_186_145_184_390_807,
                15_849_039_046_786_891_736,
                10_450_023_813_501_588_000
            ]
        );
    }

    /// First draws of fixed seeds and stream keys, computed independently
    /// (a Python transcription of the algorithms): "same seed, same bytes"
    /// is a checked promise, including the seeding and the distributions.
    #[test]
    fn known_answers_for_fixed_seeds() {
        let mut rng = Rng::new(42, 0);
        let out: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(
            out,
            [
                7_030_163_794_340_477_930,
                7_437_377_823_263_478_942,
                12_813_882_493_452_757_277,
                6_148_733_854_934_839_216
            ]
        );
        let mut rng = Rng::new(2024, 7);
        let below: Vec<u64> = (0..6).map(|_| rng.below(1000)).collect();
        assert_eq!(below, [86, 871, 758, 353, 404, 211]);
        let poisson: Vec<u32> = (0..8).map(|_| rng.poisson(4.0)).collect();
        assert_eq!(poisson, [6, 2, 1, 5, 5, 1, 5, 5]);
        assert_eq!(rng.f64(), 0.855_743_096_624_815_7);
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut rng = Rng::new(1, 1);
        let mut normals = Normals::new();
        let n = 60_000;
        let xs: Vec<f64> = (0..n).map(|_| f64::from(normals.next(&mut rng))).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
        assert!((inverse_normal_cdf(0.975) - 1.959_964).abs() < 1e-5);
    }

    #[test]
    fn poisson_means() {
        let mut rng = Rng::new(3, 3);
        for mean in [0.5, 4.0, 700.0] {
            let n = 20_000;
            let sum: u64 = (0..n).map(|_| u64::from(rng.poisson(mean))).sum();
            let got = sum as f64 / f64::from(n);
            assert!((got - mean).abs() < 0.05 * mean + 0.05, "{mean}: {got}");
        }
    }
}
