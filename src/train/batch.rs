//! A training batch: labelled (query, document) pairs for the pointwise loss, or groups
//! of [positive, negatives...] for the listwise loss.

use crate::error::{Error, Result};
use crate::train::loss::{check_labels, Loss};

/// One query with its documents, the positive first.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub query: &'a str,
    pub documents: &'a [&'a str],
}

#[derive(Debug, Clone, Copy)]
pub enum Batch<'a> {
    /// For `Loss::BinaryCrossEntropy`: `labels` holds `num_labels` values in [0, 1] per
    /// pair, row-major (one per pair for a one-label model).
    Pairs {
        pairs: &'a [(&'a str, &'a str)],
        labels: &'a [f32],
    },
    /// For `Loss::ListwiseSoftmax`: groups may differ in size; each needs a positive and at
    /// least one negative.
    Groups(&'a [Group<'a>]),
}

/// What the loss compares the logits with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Labels(Vec<f32>),
    GroupSizes(Vec<usize>),
}

/// A checked batch as the model sees it: pairs to tokenize, and the target.
#[derive(Debug)]
pub struct Prepared<'a> {
    pub pairs: Vec<(&'a str, &'a str)>,
    pub target: Target,
}

impl<'a> Batch<'a> {
    /// Checks the batch against the loss and the model's label count.
    pub fn prepare(&self, loss: Loss, num_labels: usize) -> Result<Prepared<'a>> {
        match (*self, loss) {
            (Batch::Pairs { pairs, labels }, Loss::BinaryCrossEntropy) => {
                if pairs.is_empty() {
                    return Err(Error::invalid("empty batch: no (query, document) pairs"));
                }
                if labels.len() != pairs.len() * num_labels {
                    return Err(Error::invalid(format!(
                        "{} labels for {} pairs; the model has {num_labels} label(s) per pair",
                        labels.len(),
                        pairs.len()
                    )));
                }
                check_labels(labels)?;
                Ok(Prepared {
                    pairs: pairs.to_vec(),
                    target: Target::Labels(labels.to_vec()),
                })
            }
            (Batch::Groups(groups), Loss::ListwiseSoftmax) => {
                if groups.is_empty() {
                    return Err(Error::invalid("empty batch: no groups"));
                }
                if num_labels != 1 {
                    return Err(Error::invalid(format!(
                        "the listwise loss needs a one-label model, this one has {num_labels}"
                    )));
                }
                if let Some(i) = groups.iter().position(|g| g.documents.len() < 2) {
                    return Err(Error::invalid(format!(
                        "group {i} has {} document(s); a group needs a positive and at least \
                         one negative",
                        groups[i].documents.len()
                    )));
                }
                Ok(Prepared {
                    pairs: groups
                        .iter()
                        .flat_map(|g| g.documents.iter().map(move |d| (g.query, *d)))
                        .collect(),
                    target: Target::GroupSizes(groups.iter().map(|g| g.documents.len()).collect()),
                })
            }
            (Batch::Pairs { .. }, Loss::ListwiseSoftmax) => Err(Error::invalid(
                "the listwise loss trains on groups (Batch::Groups), not labelled pairs",
            )),
            (Batch::Groups(_), Loss::BinaryCrossEntropy) => Err(Error::invalid(
                "the binary cross-entropy loss trains on labelled pairs (Batch::Pairs), not groups",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_flatten_in_order() {
        let docs_a = ["pos a", "neg a1", "neg a2"];
        let docs_b = ["pos b", "neg b"];
        let groups = [
            Group {
                query: "qa",
                documents: &docs_a,
            },
            Group {
                query: "qb",
                documents: &docs_b,
            },
        ];
        let p = Batch::Groups(&groups)
            .prepare(Loss::ListwiseSoftmax, 1)
            .unwrap();
        assert_eq!(p.pairs[0], ("qa", "pos a"));
        assert_eq!(p.pairs[3], ("qb", "pos b"));
        assert_eq!(p.target, Target::GroupSizes(vec![3, 2]));
    }

    #[test]
    fn bad_batches_are_refused() {
        let pairs = [("q", "d"), ("q", "e")];
        let err = |b: Batch, loss| b.prepare(loss, 1).unwrap_err().to_string();
        let bce = Loss::BinaryCrossEntropy;
        assert!(err(
            Batch::Pairs {
                pairs: &[],
                labels: &[]
            },
            bce
        )
        .contains("empty batch"));
        assert!(err(
            Batch::Pairs {
                pairs: &pairs,
                labels: &[1.0]
            },
            bce
        )
        .contains("1 labels for 2 pairs"));
        assert!(err(
            Batch::Pairs {
                pairs: &pairs,
                labels: &[1.0, 2.0]
            },
            bce
        )
        .contains("outside [0, 1]"));
        assert!(err(Batch::Groups(&[]), Loss::ListwiseSoftmax).contains("empty batch"));
        let lone = [Group {
            query: "q",
            documents: &["only"],
        }];
        assert!(err(Batch::Groups(&lone), Loss::ListwiseSoftmax).contains("at least one negative"));
        assert!(err(Batch::Groups(&lone), bce).contains("labelled pairs"));
        assert!(err(
            Batch::Pairs {
                pairs: &pairs,
                labels: &[1.0, 0.0]
            },
            Loss::ListwiseSoftmax
        )
        .contains("groups"));
    }
}
