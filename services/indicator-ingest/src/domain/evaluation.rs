//! Evaluating a value against its target, aware of which direction is good.

use trust_proto::common::v1::{Polarity, Rag};

/// A target in force for one indicator and locality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetSpec {
    pub value: f64,
    /// How far on the wrong side of the target still counts as amber.
    pub amber_tolerance: f64,
}

/// What a value means against its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub rag: Rag,
    /// True when the value is red: a breach that someone must act on.
    pub breach: bool,
}

/// RAG status: green on the right side of the target (or on it), amber within the tolerance on the wrong
/// side, red beyond it.
pub fn evaluate(value: f64, polarity: Polarity, target: TargetSpec) -> Evaluation {
    // How far the value falls short, in the direction that is bad for this indicator.
    let shortfall = match polarity {
        Polarity::LowerIsBetter => value - target.value,
        Polarity::HigherIsBetter | Polarity::Unspecified => target.value - value,
    };
    let rag = if shortfall <= 0.0 {
        Rag::Green
    } else if shortfall <= target.amber_tolerance.max(0.0) {
        Rag::Amber
    } else {
        Rag::Red
    };
    Evaluation {
        rag,
        breach: rag == Rag::Red,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: TargetSpec = TargetSpec {
        value: 50.0,
        amber_tolerance: 2.0,
    };

    #[test]
    fn higher_is_better() {
        assert_eq!(evaluate(55.0, Polarity::HigherIsBetter, TARGET).rag, Rag::Green);
        assert_eq!(evaluate(50.0, Polarity::HigherIsBetter, TARGET).rag, Rag::Green);
        assert_eq!(evaluate(48.5, Polarity::HigherIsBetter, TARGET).rag, Rag::Amber);
        let red = evaluate(47.9, Polarity::HigherIsBetter, TARGET);
        assert_eq!(red.rag, Rag::Red);
        assert!(red.breach);
    }

    #[test]
    fn lower_is_better() {
        assert_eq!(evaluate(45.0, Polarity::LowerIsBetter, TARGET).rag, Rag::Green);
        assert_eq!(evaluate(51.0, Polarity::LowerIsBetter, TARGET).rag, Rag::Amber);
        assert_eq!(evaluate(52.1, Polarity::LowerIsBetter, TARGET).rag, Rag::Red);
        assert!(!evaluate(45.0, Polarity::LowerIsBetter, TARGET).breach);
    }

    #[test]
    fn zero_tolerance_means_any_shortfall_is_red() {
        let strict = TargetSpec {
            value: 10.0,
            amber_tolerance: 0.0,
        };
        assert_eq!(evaluate(10.01, Polarity::LowerIsBetter, strict).rag, Rag::Red);
    }
}
