//! Turning scores into probabilities of relevance, and picking decision thresholds.
//!
//! - Temperature scaling: p = sigmoid(s / T), one parameter T > 0 (Guo et al. 2017).
//! - Platt scaling: p = sigmoid(a s + b), fitted on Platt's smoothed targets
//!   ((N+ + 1) / (N+ + 2) for positives, 1 / (N- + 2) for negatives), as Platt (1999) and
//!   scikit-learn's `CalibratedClassifierCV(method="sigmoid")` do.
//!
//! Both minimize the log loss, a convex problem solved by Newton's method with a
//! backtracking line search.

use std::str::FromStr;

use crate::rank::normalize::sigmoid;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Calibration {
    Temperature { temperature: f64 },
    Platt { a: f64, b: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Temperature,
    Platt,
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "temperature" => Ok(Self::Temperature),
            "platt" | "sigmoid" => Ok(Self::Platt),
            _ => Err(Error::invalid(format!(
                "unknown calibration method {s:?}; expected \"temperature\" or \"platt\""
            ))),
        }
    }
}

fn check(scores: &[f64], labels: &[bool]) -> Result<()> {
    if scores.len() != labels.len() {
        return Err(Error::invalid(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::invalid(format!(
            "score {i} is {}; scores must be finite",
            scores[i]
        )));
    }
    if !labels.iter().any(|&l| l) || labels.iter().all(|&l| l) {
        return Err(Error::invalid(
            "labels must contain both relevant (1) and non-relevant (0) examples",
        ));
    }
    Ok(())
}

/// Mean log loss of p = sigmoid(a s + b) against (soft) targets, and its gradient and
/// Hessian in (a, b).
fn loss(scores: &[f64], targets: &[f64], a: f64, b: f64) -> (f64, [f64; 2], [[f64; 2]; 2]) {
    let n = scores.len() as f64;
    let (mut l, mut g, mut h) = (0.0, [0.0; 2], [[0.0; 2]; 2]);
    for (&s, &t) in scores.iter().zip(targets) {
        let z = a * s + b;
        // log(1 + e^z) - t z, computed without overflow.
        l += z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z;
        let p = sigmoid(z);
        let r = p - t;
        let w = p * (1.0 - p);
        g[0] += r * s;
        g[1] += r;
        h[0][0] += w * s * s;
        h[0][1] += w * s;
        h[1][1] += w;
    }
    h[1][0] = h[0][1];
    (l / n, g.map(|v| v / n), h.map(|row| row.map(|v| v / n)))
}

/// Newton's method on (a, b), or on a alone with b fixed at 0.
fn newton(scores: &[f64], targets: &[f64], fit_b: bool) -> (f64, f64) {
    let (mut a, mut b) = (1.0, 0.0);
    for _ in 0..100 {
        let (l, g, h) = loss(scores, targets, a, b);
        let ridge = 1e-10;
        let (da, db) = if fit_b {
            let (h00, h01, h11) = (h[0][0] + ridge, h[0][1], h[1][1] + ridge);
            let det = h00 * h11 - h01 * h01;
            (
                (h11 * g[0] - h01 * g[1]) / det,
                (h00 * g[1] - h01 * g[0]) / det,
            )
        } else {
            (g[0] / (h[0][0] + ridge), 0.0)
        };
        if !(da.is_finite() && db.is_finite()) {
            break;
        }
        let mut step = 1.0;
        let mut moved = false;
        while step > 1e-10 {
            let (na, nb) = (a - step * da, b - step * db);
            if loss(scores, targets, na, nb).0 <= l {
                a = na;
                b = nb;
                moved = true;
                break;
            }
            step /= 2.0;
        }
        if !moved || (step * da).abs().max((step * db).abs()) < 1e-12 {
            break;
        }
    }
    (a, b)
}

impl Calibration {
    pub fn fit(scores: &[f64], labels: &[bool], method: Method) -> Result<Self> {
        check(scores, labels)?;
        Ok(match method {
            Method::Temperature => {
                let targets: Vec<f64> = labels.iter().map(|&l| l as u8 as f64).collect();
                let (a, _) = newton(scores, &targets, false);
                if a <= 0.0 {
                    return Err(Error::invalid(
                        "temperature scaling found no positive temperature: it maps score 0 to \
                         probability 0.5, so it needs logit-like scores (positive for relevant, \
                         negative for irrelevant); use method=\"platt\" for other scores",
                    ));
                }
                Calibration::Temperature {
                    temperature: 1.0 / a,
                }
            }
            Method::Platt => {
                let positives = labels.iter().filter(|&&l| l).count() as f64;
                let negatives = labels.len() as f64 - positives;
                let (hi, lo) = (
                    (positives + 1.0) / (positives + 2.0),
                    1.0 / (negatives + 2.0),
                );
                let targets: Vec<f64> = labels.iter().map(|&l| if l { hi } else { lo }).collect();
                let (a, b) = newton(scores, &targets, true);
                Calibration::Platt { a, b }
            }
        })
    }

    pub fn transform(&self, scores: &[f64]) -> Result<Vec<f64>> {
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(Error::invalid(format!(
                "score {i} is {}; scores must be finite",
                scores[i]
            )));
        }
        Ok(scores
            .iter()
            .map(|&s| match *self {
                Calibration::Temperature { temperature } => sigmoid(s / temperature),
                Calibration::Platt { a, b } => sigmoid(a * s + b),
            })
            .collect())
    }
}

/// Expected calibration error with `bins` equal-width bins over [0, 1]:
/// sum over bins of |bin| / n * |mean(p) - mean(label)|.
pub fn expected_calibration_error(
    probabilities: &[f64],
    labels: &[bool],
    bins: usize,
) -> Result<f64> {
    if probabilities.len() != labels.len() || probabilities.is_empty() {
        return Err(Error::invalid(
            "need one label per probability, and at least one",
        ));
    }
    if bins == 0 {
        return Err(Error::invalid("bins must be a positive integer"));
    }
    if let Some(p) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(Error::invalid(format!("probability {p} is outside [0, 1]")));
    }
    let mut sums = vec![(0.0, 0.0, 0usize); bins];
    for (&p, &l) in probabilities.iter().zip(labels) {
        let bin = ((p * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += p;
        sums[bin].1 += l as u8 as f64;
        sums[bin].2 += 1;
    }
    let n = probabilities.len() as f64;
    Ok(sums
        .iter()
        .filter(|(_, _, c)| *c > 0)
        .map(|(p, y, c)| (*c as f64 / n) * ((p - y) / *c as f64).abs())
        .sum())
}

/// What a threshold achieves: predict relevant when score >= threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdTarget {
    /// Maximize F1.
    F1,
    /// The lowest threshold (most recall) whose precision is at least this.
    MinPrecision(f64),
    /// The highest threshold whose recall is at least this.
    MinRecall(f64),
}

impl FromStr for ThresholdTarget {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "unknown target {s:?}; expected \"f1\", \"precision>=X\" or \"recall>=X\" with X in (0, 1]"
            ))
        };
        let s = s.replace(' ', "");
        if s == "f1" {
            return Ok(Self::F1);
        }
        let (kind, value) = s.split_once(">=").ok_or_else(bad)?;
        let value: f64 = value.parse().map_err(|_| bad())?;
        if !(value > 0.0 && value <= 1.0) {
            return Err(bad());
        }
        match kind {
            "precision" => Ok(Self::MinPrecision(value)),
            "recall" => Ok(Self::MinRecall(value)),
            _ => Err(bad()),
        }
    }
}

pub fn suggest_threshold(
    scores: &[f64],
    labels: &[bool],
    target: ThresholdTarget,
) -> Result<Threshold> {
    check(scores, labels)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    // Walk thresholds from the highest score down; evaluate at the end of each tie group.
    let (mut tp, mut predicted) = (0.0, 0.0);
    let mut candidates = Vec::new();
    for (i, &d) in order.iter().enumerate() {
        tp += labels[d] as u8 as f64;
        predicted += 1.0;
        let last_of_group = order
            .get(i + 1)
            .is_none_or(|&next| scores[next] != scores[d]);
        if last_of_group {
            let (precision, recall) = (tp / predicted, tp / positives);
            let f1 = if tp > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            candidates.push(Threshold {
                threshold: scores[d],
                precision,
                recall,
                f1,
            });
        }
    }
    let pick = match target {
        ThresholdTarget::F1 => {
            candidates
                .iter()
                .copied()
                .fold(None, |best: Option<Threshold>, c| match best {
                    Some(b) if b.f1 >= c.f1 => Some(b),
                    _ => Some(c),
                })
        }
        ThresholdTarget::MinPrecision(p) => {
            candidates.iter().rev().find(|c| c.precision >= p).copied()
        }
        ThresholdTarget::MinRecall(r) => candidates.iter().find(|c| c.recall >= r).copied(),
    };
    pick.ok_or_else(|| Error::invalid(format!("no threshold reaches {target:?} on these scores")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<f64>, Vec<bool>) {
        // Scores 4x too sharp: true p = sigmoid(s / 4).
        let mut seed = 5u64;
        let mut rand = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..4000)
            .map(|_| {
                let s = (rand() - 0.5) * 40.0;
                (s, rand() < sigmoid(s / 4.0))
            })
            .unzip()
    }

    #[test]
    fn recovers_the_temperature_and_lowers_ece() {
        let (s, y) = data();
        let Calibration::Temperature { temperature } =
            Calibration::fit(&s, &y, Method::Temperature).unwrap()
        else {
            panic!()
        };
        assert!((temperature - 4.0).abs() < 0.5, "{temperature}");
        let Calibration::Platt { a, b } = Calibration::fit(&s, &y, Method::Platt).unwrap() else {
            panic!()
        };
        assert!((a - 0.25).abs() < 0.04 && b.abs() < 0.3, "{a} {b}");
        let raw: Vec<f64> = s.iter().map(|&v| sigmoid(v)).collect();
        let calibrated = Calibration::Temperature { temperature }
            .transform(&s)
            .unwrap();
        let before = expected_calibration_error(&raw, &y, 10).unwrap();
        let after = expected_calibration_error(&calibrated, &y, 10).unwrap();
        assert!(after < before / 2.0, "{before} -> {after}");
    }

    #[test]
    fn thresholds_by_hand() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.5];
        let y = [true, false, true, true, false];
        let f1 = suggest_threshold(&s, &y, ThresholdTarget::F1).unwrap();
        assert_eq!(f1.threshold, 0.6);
        assert!((f1.f1 - 2.0 * 0.75 / 1.75).abs() < 1e-12);
        let p = suggest_threshold(&s, &y, "precision>=0.9".parse().unwrap()).unwrap();
        assert_eq!((p.threshold, p.precision), (0.9, 1.0));
        let r = suggest_threshold(&s, &y, "recall>=0.6".parse().unwrap()).unwrap();
        assert_eq!(r.threshold, 0.7);
        assert!("precision>=1.5".parse::<ThresholdTarget>().is_err());
        assert!(suggest_threshold(&s, &[true; 5], ThresholdTarget::F1).is_err());
        assert!(Calibration::fit(&[1.0, f64::NAN], &[true, false], Method::Platt).is_err());
    }
}
