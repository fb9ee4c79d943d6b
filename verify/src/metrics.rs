//! Logit comparison metrics, in the spirit of `llama-perplexity --kl-divergence`.
//!
//! | metric | definition (over every position of every prompt) |
//! |---|---|
//! | `max_abs` | max over positions and vocabulary of \|a − b\| |
//! | `nmse` | Σ (a − b)² / Σ a² |
//! | `kld_mean`, `kld_p99`, `kld_max` | KL(P‖Q) per position, P = softmax(original), Q = softmax(variant), in nats |
//! | `top1` | fraction of positions whose argmax agrees |
//! | `top5_overlap` | mean of \|top5(a) ∩ top5(b)\| / 5 |
//! | `argmax_changed` | positions whose argmax differs |
//!
//! Sums are in f64. Ties in argmax/top-k go to the lower token id, so the metrics are
//! deterministic. A variant that produces NaN or ±Inf logits gets `max_abs = kld = ∞` and
//! `nonfinite` counts the offending values.

/// Accumulates metrics over positions; [`Accumulator::finish`] gives the summary.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    positions: u64,
    max_abs: f64,
    sq_err: f64,
    sq_ref: f64,
    klds: Vec<f64>,
    top1_same: u64,
    top5_common: u64,
    nonfinite: u64,
}

/// The summary of one variant against the original.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Positions compared.
    pub positions: u64,
    /// Largest absolute logit difference.
    pub max_abs: f64,
    /// Normalised mean squared error.
    pub nmse: f64,
    /// Mean KL divergence (nats).
    pub kld_mean: f64,
    /// 99th percentile KL divergence (nearest rank).
    pub kld_p99: f64,
    /// Largest KL divergence.
    pub kld_max: f64,
    /// Fraction of positions with the same argmax.
    pub top1: f64,
    /// Mean top-5 overlap, 0..=1.
    pub top5_overlap: f64,
    /// Positions whose argmax changed.
    pub argmax_changed: u64,
    /// NaN/Inf logits in the variant.
    pub nonfinite: u64,
}

/// The `k` largest entries of `row`, highest first, ties to the lower index.
pub fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &x) in row.iter().enumerate() {
        if best.len() == k && !greater(x, i, row[best[k - 1]], best[k - 1]) {
            continue;
        }
        let at = best
            .iter()
            .position(|&j| greater(x, i, row[j], j))
            .unwrap_or(best.len());
        best.insert(at, i);
        best.truncate(k);
    }
    best
}

/// Orders (value, index) pairs: larger value first, then lower index. NaN sorts last.
fn greater(a: f32, ia: usize, b: f32, ib: usize) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (true, _) => false,
        (false, true) => true,
        _ => a > b || (a == b && ia < ib),
    }
}

/// `log Σ exp(row)` in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln()
}

/// KL(softmax(p) ‖ softmax(q)) in nats, f64.
pub fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    let (lp, lq) = (log_sum_exp(p), log_sum_exp(q));
    let kl: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| {
            let la = a as f64 - lp;
            la.exp() * (la - (b as f64 - lq))
        })
        .sum();
    kl.max(0.0)
}

/// What one position contributes to an [`Accumulator`].
#[derive(Debug, PartialEq)]
struct Position {
    max_abs: f64,
    sq_err: f64,
    sq_ref: f64,
    kld: f64,
    top1_same: bool,
    top5_common: u64,
    nonfinite: u64,
}

impl Position {
    fn of(orig: &[f32], var: &[f32]) -> Position {
        assert_eq!(
            orig.len(),
            var.len(),
            "logit rows of different vocabularies"
        );
        let bad = var.iter().filter(|x| !x.is_finite()).count() as u64;
        if bad == 0
            && orig
                .iter()
                .zip(var)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        {
            // The same row (a variant whose logits are known from its weights): what
            // `general` gives, bit for bit, without its exponentials.
            return Position {
                max_abs: 0.0,
                sq_err: 0.0,
                sq_ref: orig.iter().fold(0f64, |s, &a| s + a as f64 * a as f64),
                kld: 0.0,
                top1_same: true,
                top5_common: top_k(orig, 5).len() as u64,
                nonfinite: 0,
            };
        }
        Position::general(orig, var, bad)
    }

    /// [`Position::of`] for any two rows; `bad` counts `var`'s non-finite values.
    fn general(orig: &[f32], var: &[f32], bad: u64) -> Position {
        let (mut max_abs, mut sq_err, mut sq_ref) = (0f64, 0f64, 0f64);
        for (&a, &b) in orig.iter().zip(var) {
            let d = a as f64 - b as f64;
            max_abs = if d.is_nan() {
                f64::INFINITY
            } else {
                max_abs.max(d.abs())
            };
            sq_err += d * d;
            sq_ref += a as f64 * a as f64;
        }
        let (ta, tb) = (top_k(orig, 5), top_k(var, 5));
        Position {
            max_abs,
            sq_err,
            sq_ref,
            kld: if bad > 0 {
                f64::INFINITY
            } else {
                kl_divergence(orig, var)
            },
            top1_same: ta.first() == tb.first(),
            top5_common: ta.iter().filter(|i| tb.contains(i)).count() as u64,
            nonfinite: bad,
        }
    }
}

impl Accumulator {
    /// Adds one position: `orig` and `var` are the two logit rows.
    pub fn add(&mut self, orig: &[f32], var: &[f32]) {
        self.push(Position::of(orig, var));
    }

    /// Adds every position of `orig` and `var` (`[positions × vocab]` each), computed in
    /// parallel and added in position order: the same result as [`Accumulator::add`] row by
    /// row, whatever the thread count.
    pub fn add_rows(&mut self, orig: &[f32], var: &[f32], vocab: usize) {
        use rayon::prelude::*;
        assert_eq!(orig.len(), var.len(), "logits of different shapes");
        let rows: Vec<Position> = orig
            .par_chunks_exact(vocab)
            .zip(var.par_chunks_exact(vocab))
            .map(|(a, b)| Position::of(a, b))
            .collect();
        for p in rows {
            self.push(p);
        }
    }

    fn push(&mut self, p: Position) {
        self.positions += 1;
        self.nonfinite += p.nonfinite;
        self.max_abs = self.max_abs.max(p.max_abs);
        self.sq_err += p.sq_err;
        self.sq_ref += p.sq_ref;
        self.klds.push(p.kld);
        self.top1_same += u64::from(p.top1_same);
        self.top5_common += p.top5_common;
    }

    /// Merges another accumulator (prompts compared separately).
    pub fn merge(&mut self, other: Accumulator) {
        self.positions += other.positions;
        self.max_abs = self.max_abs.max(other.max_abs);
        self.sq_err += other.sq_err;
        self.sq_ref += other.sq_ref;
        self.klds.extend(other.klds);
        self.top1_same += other.top1_same;
        self.top5_common += other.top5_common;
        self.nonfinite += other.nonfinite;
    }

    /// The summary.
    pub fn finish(&self) -> Metrics {
        let n = self.positions.max(1) as f64;
        let mut klds = self.klds.clone();
        klds.sort_by(f64::total_cmp);
        let p99 = if klds.is_empty() {
            0.0
        } else {
            klds[((klds.len() as f64 * 0.99).ceil() as usize).clamp(1, klds.len()) - 1]
        };
        Metrics {
            positions: self.positions,
            max_abs: if self.nonfinite > 0 {
                f64::INFINITY
            } else {
                self.max_abs
            },
            nmse: if self.sq_ref > 0.0 {
                self.sq_err / self.sq_ref
            } else {
                0.0
            },
            kld_mean: klds.iter().sum::<f64>() / n,
            kld_p99: p99,
            kld_max: klds.last().copied().unwrap_or(0.0),
            top1: self.top1_same as f64 / n,
            top5_overlap: self.top5_common as f64 / (5.0 * n),
            argmax_changed: self.positions - self.top1_same,
            nonfinite: self.nonfinite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortcut_for_identical_rows_is_the_general_computation() {
        let rows: [&[f32]; 3] = [
            &[0.5, -1.0, 3.0, 2.0, 2.0, -7.0, 0.0, -0.0, 1e30, -1e-30],
            &[1.0, 1.0, 1.0],
            &[-3.5],
        ];
        for row in rows {
            assert_eq!(
                Position::of(row, row),
                Position::general(row, row, 0),
                "{row:?}"
            );
        }
        // Rows with a non-finite value never take it.
        let nan = [1.0f32, f32::NAN, 2.0];
        let p = Position::of(&nan, &nan);
        assert_eq!((p.nonfinite, p.kld), (1, f64::INFINITY));
    }

    #[test]
    fn identical_rows_give_zero_everything() {
        let row = [0.5f32, -1.0, 3.0, 2.0, 2.0, -7.0, 0.0];
        let mut acc = Accumulator::default();
        acc.add(&row, &row);
        let m = acc.finish();
        assert_eq!(
            (m.max_abs, m.nmse, m.kld_mean, m.kld_max),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((m.top1, m.top5_overlap, m.argmax_changed), (1.0, 1.0, 0));
    }

    #[test]
    fn kl_divergence_matches_the_closed_form() {
        // P = softmax([0, ln 3]) = [1/4, 3/4]; Q = uniform: KL = 1/4 ln(1/2) + 3/4 ln(3/2).
        let p = [0.0f32, 3f32.ln()];
        let q = [0.0f32, 0.0];
        let want = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
        assert!((kl_divergence(&p, &q) - want).abs() < 1e-7);
        // Invariant to a constant shift of either row.
        let q2 = [5.0f32, 5.0];
        assert!((kl_divergence(&p, &q2) - want).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_by_value_then_lower_index() {
        let row = [1.0f32, 3.0, 3.0, f32::NAN, 2.0, 0.0];
        assert_eq!(top_k(&row, 3), vec![1, 2, 4]);
        assert_eq!(top_k(&row, 6), vec![1, 2, 4, 0, 5, 3]);
    }

    #[test]
    fn changed_argmax_and_overlap_are_counted() {
        let a = [9.0f32, 8.0, 7.0, 6.0, 5.0, 4.0, 0.0];
        let b = [8.0f32, 9.0, 7.0, 6.0, 0.0, 4.0, 5.0];
        let mut acc = Accumulator::default();
        acc.add(&a, &b);
        acc.add(&a, &a);
        let m = acc.finish();
        // The same rows at once, in parallel.
        let mut rows = Accumulator::default();
        rows.add_rows(&[a, a].concat(), &[b, a].concat(), a.len());
        assert_eq!(rows.finish(), m);
        assert_eq!(m.positions, 2);
        assert_eq!(m.argmax_changed, 1);
        assert_eq!(m.top1, 0.5);
        // top5(a) = {0,1,2,3,4}; top5(b) = {1,0,2,3,6|5}: 4 shared, then 5 shared.
        assert!((m.top5_overlap - 0.9).abs() < 1e-12);
        assert_eq!(m.max_abs, 5.0);
        assert!(m.kld_max > 0.0 && m.kld_p99 == m.kld_max);
    }

    #[test]
    fn nonfinite_logits_are_infinitely_wrong() {
        let a = [1.0f32, 2.0];
        let b = [f32::NAN, 2.0];
        let mut acc = Accumulator::default();
        acc.add(&a, &b);
        let m = acc.finish();
        assert_eq!(m.nonfinite, 1);
        assert!(m.max_abs.is_infinite() && m.kld_mean.is_infinite());
    }
}
