//! Driver jobs and submission jobs, and their merge rules.

use super::{Text, take_opt, take_text};
use crate::ids::{JobId, NodeId};

/// A driver job (one `ray.init()`), from driver-job events.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriverJob {
    pub job_id: Option<JobId>,
    pub driver_pid: Text,
    pub driver_ip: Text,
    pub driver_node_id: Option<NodeId>,
    pub entrypoint: Text,
    pub start_ms: u64,
    pub end_ms: u64,
    pub is_dead: bool,
    /// `job_submission_id` from the job config metadata, when submitted through the job API.
    pub submission_id: Text,
    /// JSON object text of the job config metadata.
    pub metadata: Text,
    pub serialized_runtime_env: Text,
}

impl DriverJob {
    pub(super) fn merge(&mut self, other: DriverJob) {
        take_opt(&mut self.job_id, other.job_id);
        take_text(&mut self.driver_pid, other.driver_pid);
        take_text(&mut self.driver_ip, other.driver_ip);
        take_opt(&mut self.driver_node_id, other.driver_node_id);
        take_text(&mut self.entrypoint, other.entrypoint);
        if other.start_ms > 0 && (self.start_ms == 0 || other.start_ms < self.start_ms) {
            self.start_ms = other.start_ms;
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        self.is_dead |= other.is_dead;
        take_text(&mut self.submission_id, other.submission_id);
        if self.metadata.is_empty() || self.metadata.as_ref() == "{}" {
            self.metadata = other.metadata;
        }
        take_text(
            &mut self.serialized_runtime_env,
            other.serialized_runtime_env,
        );
    }
}

/// Ray's `JobStatus` of submission jobs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum JobStatus {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
}

impl JobStatus {
    /// Parses Ray's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "PENDING" => JobStatus::Pending,
            "RUNNING" => JobStatus::Running,
            "STOPPED" => JobStatus::Stopped,
            "SUCCEEDED" => JobStatus::Succeeded,
            "FAILED" => JobStatus::Failed,
            _ => return None,
        })
    }

    /// Ray's name.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }
}

/// One snapshot of a submission job (`ray job submit`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubmissionJob {
    pub submission_id: Text,
    /// Snapshot time (unix nanos) used to pick the latest snapshot.
    pub ts_ns: u64,
    pub status: Option<JobStatus>,
    pub entrypoint: Text,
    pub message: Text,
    pub error_type: Text,
    pub start_ms: u64,
    pub end_ms: u64,
    pub metadata: Text,
    pub runtime_env_json: Text,
    pub driver_agent_http_address: Text,
    pub driver_node_id: Text,
    pub driver_exit_code: Option<i64>,
}

impl SubmissionJob {
    fn key(&self) -> (u64, Option<JobStatus>, &str) {
        (self.ts_ns, self.status, &self.message)
    }

    pub(super) fn merge(&mut self, other: SubmissionJob) {
        let (mut newer, older) = if other.key() > self.key() {
            (other, std::mem::take(self))
        } else {
            (std::mem::take(self), other)
        };
        // Later snapshots can omit fields an earlier one had.
        if newer.start_ms == 0 {
            newer.start_ms = older.start_ms;
        }
        take_text(&mut newer.entrypoint, older.entrypoint);
        take_text(&mut newer.runtime_env_json, older.runtime_env_json);
        take_text(
            &mut newer.driver_agent_http_address,
            older.driver_agent_http_address,
        );
        take_text(&mut newer.driver_node_id, older.driver_node_id);
        if newer.metadata.is_empty() {
            newer.metadata = older.metadata;
        }
        *self = newer;
    }
}
