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
}

impl std::str::FromStr for Loss {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "bce" | "binary_cross_entropy" | "pointwise" => Ok(Self::BinaryCrossEntropy),
            "listwise" | "listwise_softmax" | "softmax" => Ok(Self::ListwiseSoftmax),
            _ => Err(Error::invalid(format!(
                "unknown loss {s:?}; expected \"bce\" (pointwise) or \"listwise\""
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
    let scores = logits.flatten_all()?;
    let total: usize = sizes.iter().sum();
    if sizes.is_empty() || total != scores.dim(0)? {
        return Err(Error::invalid(format!(
            "{} scores for groups of sizes {sizes:?}",
            scores.dim(0)?
        )));
    }
    let mut losses = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for &size in sizes {
        let group = scores.narrow(0, start, size)?;
        // The max only keeps exp() in range; it cancels in the value and, detached, adds
        // nothing to the gradient.
        let max = group.max_keepdim(D::Minus1)?.detach();
        let lse = (group
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            + &max)?;
        losses.push((lse - group.narrow(0, 0, 1)?)?);
        start += size;
    }
    Ok(Tensor::cat(&losses, 0)?.mean_all()?)
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
        let g = loss
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // d/ds_i = (softmax_i - [i is the positive]) / groups
        let z1: f64 = xs[..3].iter().map(|&a| (a as f64).exp()).sum();
        let want = [
            ((3f64.exp() / z1) - 1.0) / 2.0,
            (1f64.exp() / z1) / 2.0,
            ((-2f64).exp() / z1) / 2.0,
            (0.5 - 1.0) / 2.0,
            0.5 / 2.0,
        ];
        for i in 0..5 {
            assert!(
                (g[i] as f64 - want[i]).abs() < 1e-6,
                "{i}: {} vs {}",
                g[i],
                want[i]
            );
        }
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
        assert!("mse".parse::<Loss>().is_err());
    }
}
