//! Operator: CRDs, reconcilers and the collector-injecting webhook
