//! A compass's calibration constants and the orientation of a DOM from
//! its accelerometer (A) and magnetometer (H) readings, by the exact
//! order of operations of km3pipe's `fit_ahrs` (spec integrations.md
//! §3.4), and the constants from an `ahrscalib` row (§3.3).

use km3db::Table;

/// One compass's constants, matrices in the column-vector convention of
/// the `ahrscalib` stream, Jpp and km3compass: `a = R_A·(A − Aoff)`
/// (km3pipe's row-vector `Arot` is `R_Aᵀ`, spec §3.2/§3.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    pub a_off: [f64; 3],
    pub a_rot: [[f64; 3]; 3],
    pub h_off: [f64; 3],
    pub h_rot: [[f64; 3]; 3],
}

impl Constants {
    /// Offsets 0, unit matrices: the raw readings are the calibrated ones.
    pub const IDENTITY: Constants = Constants {
        a_off: [0.0; 3],
        a_rot: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        h_off: [0.0; 3],
        h_rot: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };

    /// The constants of row `row` of an `ahrscalib`-style table:
    /// `ACC_OFFSET_<q>`, `ACC_ROT_<i><j>`, `MAG_<q>MIN`/`MAX` (only their
    /// mean enters: the pairs are not ordered in the DB, spec §1.5) and
    /// `MAG_ROT_<i><j>`. A missing or unreadable field → the name of the
    /// first such column (the row is "no calibration", never guessed).
    pub fn from_row(t: &Table, row: usize) -> Result<Constants, String> {
        const Q: [&str; 3] = ["X", "Y", "Z"];
        let num = |col: &str| -> Result<f64, String> {
            let v = t.get(row, col).ok_or_else(|| format!("{col} empty"))?;
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{col} = {v:?} is not a number"))
        };
        let mut c = Constants::IDENTITY;
        for (i, qi) in Q.iter().enumerate() {
            c.a_off[i] = num(&format!("ACC_OFFSET_{qi}"))?;
            c.h_off[i] = (num(&format!("MAG_{qi}MIN"))? + num(&format!("MAG_{qi}MAX"))?) / 2.0;
            for (j, qj) in Q.iter().enumerate() {
                c.a_rot[i][j] = num(&format!("ACC_ROT_{qi}{qj}"))?;
                c.h_rot[i][j] = num(&format!("MAG_ROT_{qi}{qj}"))?;
            }
        }
        Ok(c)
    }
}

/// Degrees: yaw in [0, 360), pitch in [−90, 90], roll in (−180, 180].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orientation {
    pub yaw: f64,
    pub pitch: f64,
    pub roll: f64,
}

/// Spec §3.4, step by step. `a_j = Σ_i (A_i − Aoff_i)·Arot[i][j]` with
/// `Arot = R_Aᵀ`, i.e. `Σ_i R_A[j][i]·(A_i − Aoff_i)`.
pub fn orientation(c: &Constants, a_raw: [f32; 3], h_raw: [f32; 3]) -> Orientation {
    let apply = |rot: &[[f64; 3]; 3], off: &[f64; 3], v: [f32; 3]| {
        let d = [0, 1, 2].map(|i| f64::from(v[i]) - off[i]);
        [0, 1, 2].map(|j| d[0] * rot[j][0] + d[1] * rot[j][1] + d[2] * rot[j][2])
    };
    let mut a = apply(&c.a_rot, &c.a_off, a_raw);
    let mut h = apply(&c.h_rot, &c.h_off, h_raw);
    // The DOM is mounted upside down.
    for v in [&mut a, &mut h] {
        v[1] = -v[1];
        v[2] = -v[2];
    }
    let roll = (-a[1]).atan2(-a[2]);
    let pitch = a[0].atan2((a[1] * a[1] + a[2] * a[2]).sqrt());
    let yaw = (h[2] * roll.sin() - h[1] * roll.cos()).atan2(
        h[0] * pitch.cos() + h[1] * pitch.sin() * roll.sin() + h[2] * pitch.sin() * roll.cos(),
    );
    let mut yaw = yaw.to_degrees();
    while yaw < 0.0 {
        yaw += 360.0;
    }
    Orientation {
        yaw,
        pitch: pitch.to_degrees(),
        roll: roll.to_degrees(),
    }
}

/// Circular mean of angles in degrees (a window of yaws around 0°/360°
/// or rolls around ±180° would average to nonsense otherwise).
#[derive(Debug, Default, Clone, Copy)]
pub struct AngleMean {
    sin: f64,
    cos: f64,
    n: u64,
}

impl AngleMean {
    pub fn add(&mut self, deg: f64) {
        let r = deg.to_radians();
        self.sin += r.sin();
        self.cos += r.cos();
        self.n += 1;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// In (−180, 180]; `None` without samples.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sin.atan2(self.cos).to_degrees())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_readings_invert_orientation() {
        for (yaw, pitch, roll) in [
            (10.0, 1.5, -2.0),
            (185.0, -0.3, 179.2),
            (359.0, 0.0, -179.5),
        ] {
            // The simulator's readings for an orientation (identity
            // calibration) come back as that orientation.
            let (a, h) = simulator::dom::ahrs_readings(yaw as f32, pitch as f32, roll as f32);
            let back = orientation(&Constants::IDENTITY, a, h);
            // f32 readings: ~1e-5° of rounding.
            assert!((back.yaw - yaw).abs() < 1e-4, "{back:?}");
            assert!((back.pitch - pitch).abs() < 1e-4, "{back:?}");
            assert!((back.roll - roll).abs() < 1e-4, "{back:?}");
        }
    }

    #[test]
    fn circular_mean_across_the_wrap() {
        let mut m = AngleMean::default();
        m.add(359.0);
        m.add(1.0);
        assert!(m.mean().unwrap().abs() < 1e-12);
        let mut m = AngleMean::default();
        m.add(179.0);
        m.add(-179.0);
        assert!((m.mean().unwrap().abs() - 180.0).abs() < 1e-12);
    }
}
