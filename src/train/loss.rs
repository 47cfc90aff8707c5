//! Training losses on the model's logits, built from ops candle differentiates.

use candle_core::{Tensor, D};

use crate::error::{Error, Result};

/// Which loss `Trainer::train_step` minimises; it also decides the batch shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Pointwise: each (query, document) pair has a label in [0, 1] per output label;
    /// the mean binary cross-entropy of the logits (`torch.nn.BCEWithLogitsLoss`, as
    /// sentence-transformers' `CrossEncoder` trains with one label).
    BinaryCrossEntropy,
    /// Listwise: groups of [positive, negatives...] for one query; the mean over groups of
    /// the softmax cross-entropy with the positive as the target (`nn.CrossEntropyLoss` on
    /// each group's logits, target 0). Needs a one-label model.
    ListwiseSoftmax,
    /// Distillation, listwise: groups of documents for one query, each with a teacher's
    /// score; the mean over groups of `KL(softmax(teacher) || softmax(logits))`
    /// (`F.kl_div(log_softmax(logits), softmax(teacher), reduction="sum")` per group).
    /// Needs a one-label model.
    ListwiseKl,
    /// Distillation, pairwise (Hofstätter et al., 2020): the mean over every (first,
    /// other) document pair of each group of `((s_first - s_other) - (t_first -
    /// t_other))^2`, `s` the logits and `t` the teacher's scores (`nn.MSELoss` on the
    /// margins, as sentence-transformers' `MarginMSELoss`). Needs a one-label model.
    MarginMse,
}

impl Loss {
    /// Whether the loss trains on groups of one query's documents (else labelled pairs).
    pub fn takes_groups(self) -> bool {
        self != Self::BinaryCrossEntropy
    }

    /// Whether the loss learns from a teacher's scores (distillation).
    pub fn takes_teacher(self) -> bool {
        matches!(self, Self::ListwiseKl | Self::MarginMse)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::BinaryCrossEntropy => "bce",
            Self::ListwiseSoftmax => "listwise",
            Self::ListwiseKl => "kl",
            Self::MarginMse => "margin_mse",
        }
    }
}

impl std::str::FromStr for Loss {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "bce" | "binary_cross_entropy" | "pointwise" => Ok(Self::BinaryCrossEntropy),
            "listwise" | "listwise_softmax" | "softmax" => Ok(Self::ListwiseSoftmax),
            "kl" | "listwise_kl" | "kl_divergence" => Ok(Self::ListwiseKl),
            "margin_mse" | "marginmse" => Ok(Self::MarginMse),
            _ => Err(Error::invalid(format!(
                "unknown loss {s:?}; expected \"bce\" (pointwise), \"listwise\", or for \
                 distillation \"kl\" or \"margin_mse\""
            ))),
        }
    }
}

/// Refuses labels that are not numbers in [0, 1]: BCE with such a target has no minimum
/// at a finite logit (or no meaning), and a NaN would poison every weight.
pub fn check_labels(labels: &[f32]) -> Result<()> {
    if let Some((i, v)) = labels
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(Error::invalid(format!(
            "label {v} at position {i} is outside [0, 1]; binary cross-entropy needs \
             labels in [0, 1]"
        )));
    }
    Ok(())
}

/// Mean of `max(x, 0) - x * y + log(1 + exp(-|x|))` over all elements: BCE with logits in
/// PyTorch's overflow-free form. Its gradient is `(sigmoid(x) - y) / n`.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    if logits.shape() != labels.shape() {
        return Err(Error::invalid(format!(
            "{:?} logits for {:?} labels",
            logits.dims(),
            labels.dims()
        )));
    }
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per_element = ((logits.relu()? - (logits * labels)?)? + softplus)?;
    Ok(per_element.mean_all()?)
}

/// `logits`: (n, 1) or (n,), the groups' documents one after another; `sizes`: each
/// group's length, the positive first. Mean over groups of `logsumexp(group) - group[0]`.
pub fn listwise_softmax_cross_entropy(logits: &Tensor, sizes: &[usize]) -> Result<Tensor> {
    let losses = groups(logits, sizes)?
        .iter()
        .map(|group| Ok(log_softmax(group)?.narrow(0, 0, 1)?.neg()?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&losses, 0)?.mean_all()?)
}

/// Splits the flattened `logits` of groups of `sizes` into one tensor per group.
fn groups(logits: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
    let scores = logits.flatten_all()?;
    let total: usize = sizes.iter().sum();
    if sizes.is_empty() || total != scores.dim(0)? {
        return Err(Error::invalid(format!(
            "{} scores for groups of sizes {sizes:?}",
            scores.dim(0)?
        )));
    }
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for &size in sizes {
        out.push(scores.narrow(0, start, size)?);
        start += size;
    }
    Ok(out)
}

/// `log(softmax(group))`, with the max subtracted (and detached) to keep exp() in range.
fn log_softmax(group: &Tensor) -> Result<Tensor> {
    let max = group.max_keepdim(D::Minus1)?.detach();
    let shifted = group.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// The softmax of a teacher's scores, in f64 for the constant term of the KL divergence.
fn teacher_distribution(scores: &[f32]) -> Vec<f64> {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let exp: Vec<f64> = scores.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Refuses teacher scores that are not one finite number per document of groups of
/// `sizes`: a missing score would shift every later one onto the wrong document, and a
/// NaN would poison every weight.
pub fn check_teacher(teacher: &[f32], sizes: &[usize]) -> Result<()> {
    let total: usize = sizes.iter().sum();
    if teacher.len() != total {
        return Err(Error::invalid(format!(
            "{} teacher scores for {total} documents; one per document",
            teacher.len()
        )));
    }
    if let Some(i) = teacher.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "teacher score {} at position {i} is not a finite number",
            teacher[i]
        )));
    }
    Ok(())
}

/// `logits`: (n, 1) or (n,), the groups' documents one after another; `sizes`: each
/// group's length; `teacher`: a score per document, in the same order. Mean over groups of
/// `sum_j p_j (log p_j - log q_j)`, `p = softmax(teacher)`, `q = softmax(logits)`.
pub fn listwise_kl_divergence(logits: &Tensor, sizes: &[usize], teacher: &[f32]) -> Result<Tensor> {
    check_teacher(teacher, sizes)?;
    let mut losses = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for (group, &size) in groups(logits, sizes)?.iter().zip(sizes) {
        let p = teacher_distribution(&teacher[start..start + size]);
        // p log p: a constant (no gradient), 0 where p is 0.
        let entropy: f64 = p.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum();
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        let p = Tensor::from_slice(&p32, size, group.device())?;
        let cross = (log_softmax(group)? * p)?.sum_all()?;
        losses.push((cross.neg()? + entropy)?.reshape(1)?);
        start += size;
    }
    Ok(Tensor::cat(&losses, 0)?.mean_all()?)
}

/// `logits` and `sizes` as for [`listwise_kl_divergence`]; the mean over every (first,
/// other) pair of every group of the squared difference between the logits' margin and
/// the teacher's.
pub fn margin_mse(logits: &Tensor, sizes: &[usize], teacher: &[f32]) -> Result<Tensor> {
    check_teacher(teacher, sizes)?;
    let mut margins = Vec::with_capacity(sizes.len());
    let mut targets = Vec::new();
    let mut start = 0;
    for (group, &size) in groups(logits, sizes)?.iter().zip(sizes) {
        if size < 2 {
            return Err(Error::invalid(format!(
                "a group of {size} document(s) has no margin; it needs a first document and \
                 at least one other"
            )));
        }
        let first = group.narrow(0, 0, 1)?;
        margins.push(first.broadcast_sub(&group.narrow(0, 1, size - 1)?)?);
        let t = &teacher[start..start + size];
        targets.extend(t[1..].iter().map(|&other| t[0] - other));
        start += size;
    }
    let margins = Tensor::cat(&margins, 0)?;
    let targets = Tensor::from_slice(&targets, targets.len(), margins.device())?;
    Ok((margins - targets)?.sqr()?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn scalar(t: &Tensor) -> f64 {
        t.to_scalar::<f32>().unwrap() as f64
    }

    #[test]
    fn bce_value_and_gradient() {
        let dev = Device::Cpu;
        let xs = [2.0f32, -1.0, 0.0, 30.0];
        let ys = [1.0f32, 0.25, 0.5, 0.0];
        let x = Var::from_slice(&xs, (4, 1), &dev).unwrap();
        let y = Tensor::from_slice(&ys, (4, 1), &dev).unwrap();
        let loss = binary_cross_entropy_with_logits(x.as_tensor(), &y).unwrap();
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let expected: f64 = xs
            .iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let p = sigmoid(x as f64);
                // log(1 - p) for x = 30 underflows in this naive form; use -x + log(p).
                -(y as f64 * p.ln() + (1.0 - y as f64) * (-(x as f64) + p.ln()))
            })
            .sum::<f64>()
            / 4.0;
        assert!((scalar(&loss) - expected).abs() < 1e-6, "{}", scalar(&loss));
        let grads = loss.backward().unwrap();
        let g = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for i in 0..4 {
            let want = (sigmoid(xs[i] as f64) - ys[i] as f64) / 4.0;
            assert!((g[i] as f64 - want).abs() < 1e-7, "{i}: {} vs {want}", g[i]);
        }
    }

    #[test]
    fn listwise_value_and_gradient() {
        let dev = Device::Cpu;
        let xs = [3.0f32, 1.0, -2.0, 0.5, 0.5];
        let x = Var::from_slice(&xs, (5, 1), &dev).unwrap();
        let loss = listwise_softmax_cross_entropy(x.as_tensor(), &[3, 2]).unwrap();
        let lse = |v: &[f32]| v.iter().map(|&a| (a as f64).exp()).sum::<f64>().ln();
        let expected = ((lse(&xs[..3]) - 3.0) + (lse(&xs[3..]) - 0.5)) / 2.0;
        assert!((scalar(&loss) - expected).abs() < 1e-6);
        let g = gradient(&loss, &x);
        // d/ds_i = (softmax_i - [i is the positive]) / groups
        let z1: f64 = xs[..3].iter().map(|&a| (a as f64).exp()).sum();
        let want = [
            ((3f64.exp() / z1) - 1.0) / 2.0,
            (1f64.exp() / z1) / 2.0,
            ((-2f64).exp() / z1) / 2.0,
            (0.5 - 1.0) / 2.0,
            0.5 / 2.0,
        ];
        assert_close(&g, &want, 1e-6);
    }

    fn assert_close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((g as f64 - w).abs() < tol, "{i}: {g} vs {w}");
        }
    }

    fn gradient(loss: &Tensor, x: &Var) -> Vec<f32> {
        loss.backward()
            .unwrap()
            .get(x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn kl_value_and_gradient() {
        let dev = Device::Cpu;
        let xs = [3.0f32, 1.0, -2.0, 0.5, 0.5];
        let ts = [2.0f32, 2.0, -1.0, 4.0, 0.0];
        let x = Var::from_slice(&xs, (5, 1), &dev).unwrap();
        let loss = listwise_kl_divergence(x.as_tensor(), &[3, 2], &ts).unwrap();
        let softmax = |v: &[f32]| {
            let z: f64 = v.iter().map(|&a| (a as f64).exp()).sum();
            v.iter()
                .map(|&a| (a as f64).exp() / z)
                .collect::<Vec<f64>>()
        };
        let (mut expected, mut want) = (0.0, Vec::new());
        for (s, t) in [(&xs[..3], &ts[..3]), (&xs[3..], &ts[3..])] {
            let (q, p) = (softmax(s), softmax(t));
            expected += p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum::<f64>() / 2.0;
            // d/ds_i = (q_i - p_i) / groups
            want.extend(q.iter().zip(&p).map(|(q, p)| (q - p) / 2.0));
        }
        assert!(
            (scalar(&loss) - expected).abs() < 1e-6,
            "{} vs {expected}",
            scalar(&loss)
        );
        assert_close(&gradient(&loss, &x), &want, 1e-6);
        // The student equal to the teacher: no loss.
        let same = Var::from_slice(&ts, 5, &dev).unwrap();
        assert!(
            scalar(&listwise_kl_divergence(same.as_tensor(), &[3, 2], &ts).unwrap()).abs() < 1e-6
        );
    }

    #[test]
    fn margin_mse_value_and_gradient() {
        let dev = Device::Cpu;
        let xs = [3.0f32, 1.0, -2.0, 0.5, 0.25];
        let ts = [2.0f32, 2.5, -1.0, 4.0, 0.0];
        let x = Var::from_slice(&xs, (5, 1), &dev).unwrap();
        let loss = margin_mse(x.as_tensor(), &[3, 2], &ts).unwrap();
        // Pairs (0,1), (0,2), (3,4): student margins 2, 5, 0.25; teacher -0.5, 3, 4.
        let d = [2.0 + 0.5, 5.0 - 3.0, 0.25 - 4.0];
        let expected = d.iter().map(|v| v * v).sum::<f64>() / 3.0;
        assert!((scalar(&loss) - expected).abs() < 1e-5);
        // d/ds_first = sum 2 d / 3, d/ds_other = -2 d / 3.
        let want = [
            2.0 * (d[0] + d[1]) / 3.0,
            -2.0 * d[0] / 3.0,
            -2.0 * d[1] / 3.0,
            2.0 * d[2] / 3.0,
            -2.0 * d[2] / 3.0,
        ];
        assert_close(&gradient(&loss, &x), &want, 1e-5);
    }

    #[test]
    fn teacher_scores_must_match_and_be_finite() {
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0], 3, &Device::Cpu).unwrap();
        let err = |r: Result<Tensor>| r.unwrap_err().to_string();
        assert!(err(margin_mse(&x, &[3], &[1.0, 2.0])).contains("2 teacher scores for 3 documents"));
        assert!(err(listwise_kl_divergence(&x, &[3], &[1.0, f32::NAN, 0.0])).contains("position 1"));
        assert!(err(margin_mse(&x, &[1, 2], &[1.0, 2.0, 3.0])).contains("has no margin"));
    }

    #[test]
    fn labels_outside_unit_interval_are_refused() {
        assert!(check_labels(&[0.0, 1.0, 0.5]).is_ok());
        for bad in [1.5f32, -0.1, f32::NAN, f32::INFINITY] {
            let err = check_labels(&[0.0, bad]).unwrap_err().to_string();
            assert!(
                err.contains("outside [0, 1]") && err.contains("position 1"),
                "{err}"
            );
        }
    }

    #[test]
    fn loss_names_parse() {
        assert_eq!("bce".parse::<Loss>().unwrap(), Loss::BinaryCrossEntropy);
        assert_eq!("Listwise".parse::<Loss>().unwrap(), Loss::ListwiseSoftmax);
        assert_eq!("kl".parse::<Loss>().unwrap(), Loss::ListwiseKl);
        assert_eq!("margin-mse".parse::<Loss>().unwrap(), Loss::MarginMse);
        assert!("mse".parse::<Loss>().is_err());
    }
}
