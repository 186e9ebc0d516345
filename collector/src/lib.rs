//! Collector sidecar: streams Ray logs and events to object storage
