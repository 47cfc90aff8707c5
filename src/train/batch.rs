//! A training batch: labelled (query, document) pairs for the pointwise loss, groups of
//! [positive, negatives...] for the listwise loss, or groups with a teacher's score per
//! document for the distillation losses.

use crate::error::{Error, Result};
use crate::train::loss::{check_labels, check_teacher, Loss};

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
    /// For `Loss::ListwiseKl` and `Loss::MarginMse`: groups as above (for the margin loss
    /// the first document is the one the others' margins are taken from) and a teacher's
    /// score for every document of every group, in order.
    Distill {
        groups: &'a [Group<'a>],
        teacher: &'a [f32],
    },
}

/// What the loss compares the logits with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Labels(Vec<f32>),
    GroupSizes(Vec<usize>),
    Teacher { sizes: Vec<usize>, scores: Vec<f32> },
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
            (Batch::Groups(groups), Loss::ListwiseSoftmax) => Ok(Prepared {
                pairs: group_pairs(groups, loss, num_labels)?,
                target: Target::GroupSizes(groups.iter().map(|g| g.documents.len()).collect()),
            }),
            (Batch::Distill { groups, teacher }, Loss::ListwiseKl | Loss::MarginMse) => {
                let pairs = group_pairs(groups, loss, num_labels)?;
                let sizes: Vec<usize> = groups.iter().map(|g| g.documents.len()).collect();
                check_teacher(teacher, &sizes)?;
                Ok(Prepared {
                    pairs,
                    target: Target::Teacher {
                        sizes,
                        scores: teacher.to_vec(),
                    },
                })
            }
            (batch, loss) => Err(Error::invalid(format!(
                "the {} loss trains on {}, not {}",
                loss.name(),
                expected_batch(loss),
                batch.kind()
            ))),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Batch::Pairs { .. } => PAIRS,
            Batch::Groups(_) => GROUPS,
            Batch::Distill { .. } => DISTILL,
        }
    }
}

/// What each batch variant is called in errors.
const PAIRS: &str = "labelled pairs (Batch::Pairs)";
const GROUPS: &str = "groups (Batch::Groups)";
const DISTILL: &str = "groups with teacher scores (Batch::Distill)";

/// The batch variant `loss` trains on, as [`Batch::kind`] names it.
fn expected_batch(loss: Loss) -> &'static str {
    match loss {
        Loss::BinaryCrossEntropy => PAIRS,
        Loss::ListwiseSoftmax => GROUPS,
        Loss::ListwiseKl | Loss::MarginMse => DISTILL,
    }
}

/// The (query, document) pairs of `groups`, in order, once the groups are checked: at
/// least one, each with two documents or more, a one-label model.
fn group_pairs<'a>(
    groups: &'a [Group<'a>],
    loss: Loss,
    num_labels: usize,
) -> Result<Vec<(&'a str, &'a str)>> {
    if groups.is_empty() {
        return Err(Error::invalid("empty batch: no groups"));
    }
    if num_labels != 1 {
        return Err(Error::invalid(format!(
            "the {} loss needs a one-label model, this one has {num_labels}",
            loss.name()
        )));
    }
    if let Some(i) = groups.iter().position(|g| g.documents.len() < 2) {
        return Err(Error::invalid(format!(
            "group {i} has {} document(s); a group needs a positive and at least \
             one negative",
            groups[i].documents.len()
        )));
    }
    Ok(groups
        .iter()
        .flat_map(|g| g.documents.iter().map(move |d| (g.query, *d)))
        .collect())
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

    #[test]
    fn distillation_batches_carry_the_teacher() {
        let docs = ["pos", "neg a", "neg b"];
        let groups = [Group {
            query: "q",
            documents: &docs,
        }];
        let teacher = [2.0, 0.5, -1.0];
        let p = Batch::Distill {
            groups: &groups,
            teacher: &teacher,
        }
        .prepare(Loss::MarginMse, 1)
        .unwrap();
        assert_eq!(p.pairs.len(), 3);
        assert_eq!(
            p.target,
            Target::Teacher {
                sizes: vec![3],
                scores: teacher.to_vec()
            }
        );
        let err = |b: Batch, loss| b.prepare(loss, 1).unwrap_err().to_string();
        let short = Batch::Distill {
            groups: &groups,
            teacher: &teacher[..2],
        };
        assert!(err(short, Loss::ListwiseKl).contains("2 teacher scores for 3 documents"));
        // Refused before any forward pass.
        let nan = Batch::Distill {
            groups: &groups,
            teacher: &[1.0, f32::NAN, 0.0],
        };
        assert!(err(nan, Loss::MarginMse).contains("position 1 is not a finite number"));
        assert!(err(Batch::Groups(&groups), Loss::ListwiseKl).contains("teacher scores"));
        let full = Batch::Distill {
            groups: &groups,
            teacher: &teacher,
        };
        assert!(err(full, Loss::ListwiseSoftmax).contains("not groups with teacher scores"));
        assert!(full
            .prepare(Loss::MarginMse, 2)
            .unwrap_err()
            .to_string()
            .contains("margin_mse loss needs a one-label model"));
    }
}
