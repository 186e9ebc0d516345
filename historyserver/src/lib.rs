//! History server: serves stored Ray sessions, logs and the Ray dashboard API
