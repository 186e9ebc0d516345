//! RayEvents pushed over HTTP by Ray's aggregator agent and stored as JSON Lines under
//! `node_events/`. Each line is one RayEvent object or a JSON array of them (a POST body).
//! Keys are camelCase by default and snake_case with
//! `RAY_DASHBOARD_AGGREGATOR_AGENT_PRESERVE_PROTO_FIELD_NAME=1`; both are accepted.
//! Timestamps are RFC 3339, ids base64, int64 fields strings.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::export::{DeathCause, ErrorData, LogInfoData, ProfileEvents, map_text, non_nil};
use super::{flex_u64, resources_text, rfc3339_ns};
use crate::ids::Id;
use crate::model::{
    ActorDefinition, ActorState, ActorTransition, ActorUpdate, Builder, DriverJob, ErrorInfo, Node,
    NodeState, TaskDefinition, TaskState, TaskType, TaskUpdate,
};

/// Parses one line (an event or an array of events); `false` when it is corrupt.
pub fn parse_line(line: &[u8], builder: &mut Builder) -> bool {
    if line.first() == Some(&b'[') {
        let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(line) else {
            return false;
        };
        let mut all_ok = true;
        for item in items {
            all_ok &= parse_event(item.get().as_bytes(), builder);
        }
        all_ok
    } else {
        parse_event(line, builder)
    }
}

#[derive(Deserialize)]
struct RayEvent<'a> {
    #[serde(borrow, alias = "eventType")]
    event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow, alias = "taskDefinitionEvent")]
    task_definition_event: Option<TaskDef<'a>>,
    #[serde(default, borrow, alias = "actorTaskDefinitionEvent")]
    actor_task_definition_event: Option<TaskDef<'a>>,
    #[serde(default, borrow, alias = "taskLifecycleEvent")]
    task_lifecycle_event: Option<TaskLifecycle<'a>>,
    #[serde(default, borrow, alias = "taskProfileEvents")]
    task_profile_events: Option<TaskProfile<'a>>,
    #[serde(default, borrow, alias = "actorDefinitionEvent")]
    actor_definition_event: Option<ActorDef<'a>>,
    #[serde(default, borrow, alias = "actorLifecycleEvent")]
    actor_lifecycle_event: Option<ActorLifecycle<'a>>,
    #[serde(default, borrow, alias = "driverJobDefinitionEvent")]
    driver_job_definition_event: Option<DriverJobDef<'a>>,
    #[serde(default, borrow, alias = "driverJobLifecycleEvent")]
    driver_job_lifecycle_event: Option<DriverJobLifecycle<'a>>,
    #[serde(default, borrow, alias = "nodeDefinitionEvent")]
    node_definition_event: Option<NodeDef<'a>>,
    #[serde(default, borrow, alias = "nodeLifecycleEvent")]
    node_lifecycle_event: Option<NodeLifecycle<'a>>,
}

fn parse_event(bytes: &[u8], builder: &mut Builder) -> bool {
    let Ok(event) = serde_json::from_slice::<RayEvent>(bytes) else {
        return false;
    };
    let ts = rfc3339_ns(&event.timestamp).unwrap_or(0);
    let handled = match event.event_type.as_ref() {
        "TASK_DEFINITION_EVENT" => event
            .task_definition_event
            .map(|d| task_definition(d, ts, false, builder)),
        "ACTOR_TASK_DEFINITION_EVENT" => event
            .actor_task_definition_event
            .map(|d| task_definition(d, ts, true, builder)),
        "TASK_LIFECYCLE_EVENT" => event
            .task_lifecycle_event
            .map(|l| task_lifecycle(l, ts, builder)),
        "TASK_PROFILE_EVENT" => event
            .task_profile_events
            .map(|p| task_profile(p, ts, builder)),
        "ACTOR_DEFINITION_EVENT" => event
            .actor_definition_event
            .map(|a| actor_definition(a, builder)),
        "ACTOR_LIFECYCLE_EVENT" => event
            .actor_lifecycle_event
            .map(|a| actor_lifecycle(a, builder)),
        "DRIVER_JOB_DEFINITION_EVENT" => event
            .driver_job_definition_event
            .map(|j| driver_job_definition(j, builder)),
        "DRIVER_JOB_LIFECYCLE_EVENT" => event
            .driver_job_lifecycle_event
            .map(|j| driver_job_lifecycle(j, builder)),
        "NODE_DEFINITION_EVENT" => event
            .node_definition_event
            .map(|n| node_definition(n, builder)),
        "NODE_LIFECYCLE_EVENT" => event
            .node_lifecycle_event
            .map(|n| node_lifecycle(n, builder)),
        _ => {
            // Worker events and types added by later Ray versions are not needed here.
            builder.stats.unknown_events += 1;
            Some(())
        }
    };
    handled.is_some()
}

#[derive(Deserialize)]
struct FunctionDescriptor<'a> {
    #[serde(default, borrow, alias = "className")]
    class_name: Cow<'a, str>,
    #[serde(default, borrow, alias = "functionName")]
    function_name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct TaskFunc<'a> {
    #[serde(default, borrow, alias = "pythonFunctionDescriptor")]
    python_function_descriptor: Option<FunctionDescriptor<'a>>,
    #[serde(default, borrow, alias = "javaFunctionDescriptor")]
    java_function_descriptor: Option<FunctionDescriptor<'a>>,
    #[serde(default, borrow, alias = "cppFunctionDescriptor")]
    cpp_function_descriptor: Option<FunctionDescriptor<'a>>,
}

impl TaskFunc<'_> {
    /// `Class.method` or `function`, as Ray's state API shows `func_or_class_name`.
    fn func_or_class_name(&self) -> String {
        let Some(d) = self
            .python_function_descriptor
            .as_ref()
            .or(self.java_function_descriptor.as_ref())
            .or(self.cpp_function_descriptor.as_ref())
        else {
            return String::new();
        };
        if d.class_name.is_empty() {
            d.function_name.to_string()
        } else {
            format!("{}.{}", d.class_name, d.function_name)
        }
    }
}

#[derive(Deserialize)]
struct TaskDef<'a> {
    #[serde(borrow, alias = "taskId")]
    task_id: Cow<'a, str>,
    #[serde(default, alias = "taskAttempt")]
    task_attempt: u32,
    #[serde(default, borrow, alias = "taskType")]
    task_type: Cow<'a, str>,
    #[serde(
        default,
        borrow,
        alias = "taskName",
        alias = "actor_task_name",
        alias = "actorTaskName"
    )]
    task_name: Cow<'a, str>,
    #[serde(
        default,
        borrow,
        alias = "taskFunc",
        alias = "actor_func",
        alias = "actorFunc"
    )]
    task_func: Option<TaskFunc<'a>>,
    #[serde(default, borrow, alias = "requiredResources")]
    required_resources: Option<&'a RawValue>,
    #[serde(default, borrow, alias = "jobId")]
    job_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "actorId")]
    actor_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "parentTaskId")]
    parent_task_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "placementGroupId")]
    placement_group_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "serializedRuntimeEnv")]
    serialized_runtime_env: Cow<'a, str>,
    #[serde(default, borrow)]
    language: Cow<'a, str>,
}

fn task_definition(def: TaskDef, ts: u64, actor_task: bool, builder: &mut Builder) {
    let task_type = if actor_task {
        Some(TaskType::Actor)
    } else {
        TaskType::from_name(&def.task_type)
    };
    let job_id = Id::from_base64(&def.job_id);
    let func = def
        .task_func
        .as_ref()
        .map(|f| f.func_or_class_name())
        .unwrap_or_default();
    let definition = TaskDefinition {
        name: builder.intern(&def.task_name),
        func_or_class_name: builder.intern(&func),
        task_type,
        language: builder.intern(&def.language),
        job_id,
        actor_id: non_nil(&def.actor_id),
        parent_task_id: non_nil(&def.parent_task_id),
        placement_group_id: non_nil(&def.placement_group_id),
        required_resources: resources_text(def.required_resources, builder),
        serialized_runtime_env: builder.intern(&def.serialized_runtime_env),
        runtime_env_config: builder.intern(""),
    };
    builder.task(TaskUpdate {
        task_id: Id::from_base64(&def.task_id),
        attempt: def.task_attempt,
        definition: Some(definition),
        job_id,
        event_ns: ts,
        ..Default::default()
    });
}

#[derive(Deserialize)]
struct Transition<'a> {
    #[serde(default, borrow)]
    state: Cow<'a, str>,
    #[serde(default, borrow)]
    timestamp: Cow<'a, str>,
}

#[derive(Deserialize)]
struct TaskLifecycle<'a> {
    #[serde(borrow, alias = "taskId")]
    task_id: Cow<'a, str>,
    #[serde(default, alias = "taskAttempt")]
    task_attempt: u32,
    #[serde(default, borrow, alias = "stateTransitions")]
    state_transitions: Vec<Transition<'a>>,
    #[serde(default, borrow, alias = "rayErrorInfo")]
    ray_error_info: Option<ErrorData<'a>>,
    #[serde(default, borrow, alias = "nodeId")]
    node_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "workerId")]
    worker_id: Cow<'a, str>,
    #[serde(default, alias = "workerPid")]
    worker_pid: u32,
    #[serde(default, borrow, alias = "jobId")]
    job_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "taskLogInfo")]
    task_log_info: Option<LogInfoData<'a>>,
}

fn task_lifecycle(life: TaskLifecycle, ts: u64, builder: &mut Builder) {
    let states = life
        .state_transitions
        .iter()
        .filter_map(|t| Some((TaskState::from_name(&t.state)?, rfc3339_ns(&t.timestamp)?)))
        .collect();
    let error = life.ray_error_info.map(|e| ErrorInfo {
        error_type: builder.intern(&e.error_type),
        message: e.error_message.into(),
    });
    let log_info = life.task_log_info.map(|l| l.to_model(builder));
    builder.task(TaskUpdate {
        task_id: Id::from_base64(&life.task_id),
        attempt: life.task_attempt,
        states,
        node_id: Id::from_base64(&life.node_id),
        worker_id: Id::from_base64(&life.worker_id),
        worker_pid: Some(life.worker_pid).filter(|p| *p > 0),
        error,
        log_info,
        job_id: Id::from_base64(&life.job_id),
        event_ns: ts,
        ..Default::default()
    });
}

#[derive(Deserialize)]
struct TaskProfile<'a> {
    #[serde(borrow, alias = "taskId")]
    task_id: Cow<'a, str>,
    #[serde(default, alias = "attemptNumber")]
    attempt_number: u32,
    #[serde(default, borrow, alias = "jobId")]
    job_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "profileEvents")]
    profile_events: Option<ProfileEvents<'a>>,
}

fn task_profile(p: TaskProfile, ts: u64, builder: &mut Builder) {
    let profile = p.profile_events.map(|e| e.to_model(builder));
    builder.task(TaskUpdate {
        task_id: Id::from_base64(&p.task_id),
        attempt: p.attempt_number,
        job_id: Id::from_base64(&p.job_id),
        profile,
        event_ns: ts,
        ..Default::default()
    });
}

#[derive(Deserialize)]
struct ActorDef<'a> {
    #[serde(borrow, alias = "actorId")]
    actor_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "jobId")]
    job_id: Cow<'a, str>,
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow, alias = "rayNamespace")]
    ray_namespace: Cow<'a, str>,
    #[serde(default, borrow, alias = "className")]
    class_name: Cow<'a, str>,
    #[serde(default, alias = "isDetached")]
    is_detached: bool,
    #[serde(default, borrow, alias = "requiredResources")]
    required_resources: Option<&'a RawValue>,
    #[serde(default, borrow, alias = "labelSelector")]
    label_selector: Option<&'a RawValue>,
    #[serde(default, borrow, alias = "serializedRuntimeEnv")]
    serialized_runtime_env: Cow<'a, str>,
    #[serde(default, borrow, alias = "placementGroupId")]
    placement_group_id: Cow<'a, str>,
}

fn actor_definition(def: ActorDef, builder: &mut Builder) {
    let Some(actor_id) = Id::from_base64(&def.actor_id) else {
        builder.stats.unknown_events += 1;
        return;
    };
    let definition = ActorDefinition {
        job_id: Id::from_base64(&def.job_id),
        name: builder.intern(&def.name),
        class_name: builder.intern(&def.class_name),
        ray_namespace: builder.intern(&def.ray_namespace),
        is_detached: def.is_detached,
        required_resources: resources_text(def.required_resources, builder),
        label_selector: builder.intern(&map_text(def.label_selector)),
        serialized_runtime_env: builder.intern(&def.serialized_runtime_env),
        placement_group_id: non_nil(&def.placement_group_id),
    };
    builder.actor(ActorUpdate {
        actor_id,
        definition: Some(definition),
        transitions: Vec::new(),
    });
}

#[derive(Deserialize)]
struct ActorTransitionData<'a> {
    #[serde(default, borrow)]
    state: Cow<'a, str>,
    #[serde(default, borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow, alias = "nodeId")]
    node_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "workerId")]
    worker_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "reprName")]
    repr_name: Cow<'a, str>,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    port: u32,
    #[serde(default, alias = "numRestarts", deserialize_with = "flex_u64")]
    num_restarts: Option<u64>,
    #[serde(default, borrow, alias = "deathCause")]
    death_cause: Option<DeathCause<'a>>,
}

#[derive(Deserialize)]
struct ActorLifecycle<'a> {
    #[serde(borrow, alias = "actorId")]
    actor_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "stateTransitions")]
    state_transitions: Vec<ActorTransitionData<'a>>,
}

fn actor_lifecycle(life: ActorLifecycle, builder: &mut Builder) {
    let Some(actor_id) = Id::from_base64(&life.actor_id) else {
        builder.stats.unknown_events += 1;
        return;
    };
    let mut transitions = Vec::with_capacity(life.state_transitions.len());
    for t in &life.state_transitions {
        let (Some(state), Some(ts_ns)) =
            (ActorState::from_name(&t.state), rfc3339_ns(&t.timestamp))
        else {
            continue;
        };
        transitions.push(ActorTransition {
            ts_ns,
            num_restarts: t.num_restarts.unwrap_or(0) as u32,
            state,
            node_id: Id::from_base64(&t.node_id),
            worker_id: Id::from_base64(&t.worker_id),
            pid: t.pid,
            port: t.port,
            repr_name: builder.intern(&t.repr_name),
            exit_detail: builder.intern(
                t.death_cause
                    .as_ref()
                    .map(|d| d.message())
                    .unwrap_or_default(),
            ),
        });
    }
    builder.actor(ActorUpdate {
        actor_id,
        definition: None,
        transitions,
    });
}

#[derive(Deserialize)]
struct DriverJobConfig<'a> {
    #[serde(default, borrow, alias = "serializedRuntimeEnv")]
    serialized_runtime_env: Cow<'a, str>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DriverJobDef<'a> {
    #[serde(borrow, alias = "jobId")]
    job_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "driverPid")]
    driver_pid: Cow<'a, str>,
    #[serde(default, borrow, alias = "driverNodeId")]
    driver_node_id: Cow<'a, str>,
    #[serde(default, borrow)]
    entrypoint: Cow<'a, str>,
    #[serde(default, borrow)]
    config: Option<DriverJobConfig<'a>>,
}

fn driver_job_definition(def: DriverJobDef, builder: &mut Builder) {
    let metadata = def
        .config
        .as_ref()
        .and_then(|c| c.metadata)
        .map(|m| m.get())
        .unwrap_or("{}");
    let job = DriverJob {
        job_id: Id::from_base64(&def.job_id),
        driver_pid: builder.intern(&def.driver_pid),
        driver_node_id: Id::from_base64(&def.driver_node_id),
        entrypoint: builder.intern(&def.entrypoint),
        submission_id: builder.intern(&super::export::submission_id_of(metadata)),
        metadata: builder.intern(&map_text(serde_json::from_str(metadata).ok())),
        serialized_runtime_env: builder.intern(
            def.config
                .as_ref()
                .map(|c| c.serialized_runtime_env.as_ref())
                .unwrap_or_default(),
        ),
        ..DriverJob::default()
    };
    builder.driver_job(job);
}

#[derive(Deserialize)]
struct DriverJobLifecycle<'a> {
    #[serde(borrow, alias = "jobId")]
    job_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "stateTransitions")]
    state_transitions: Vec<Transition<'a>>,
}

fn driver_job_lifecycle(life: DriverJobLifecycle, builder: &mut Builder) {
    let mut job = DriverJob {
        job_id: Id::from_base64(&life.job_id),
        ..DriverJob::default()
    };
    for t in &life.state_transitions {
        let Some(ms) = rfc3339_ns(&t.timestamp).map(|ns| ns / 1_000_000) else {
            continue;
        };
        match t.state.as_ref() {
            "CREATED" => job.start_ms = ms,
            "FINISHED" => {
                job.end_ms = ms;
                job.is_dead = true;
            }
            _ => {}
        }
    }
    builder.driver_job(job);
}

#[derive(Deserialize)]
struct NodeDef<'a> {
    #[serde(borrow, alias = "nodeId")]
    node_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "nodeIpAddress")]
    node_ip_address: Cow<'a, str>,
    #[serde(default, borrow, alias = "nodeName")]
    node_name: Cow<'a, str>,
    #[serde(default, borrow)]
    hostname: Cow<'a, str>,
    #[serde(default, borrow)]
    labels: Option<&'a RawValue>,
    #[serde(default, borrow, alias = "startTimestamp")]
    start_timestamp: Cow<'a, str>,
}

fn node_definition(def: NodeDef, builder: &mut Builder) {
    let Some(node_id) = Id::from_base64(&def.node_id) else {
        builder.stats.unknown_events += 1;
        return;
    };
    let mut node = Node::new(node_id);
    node.ip = builder.intern(&def.node_ip_address);
    node.node_name = builder.intern(&def.node_name);
    node.hostname = builder.intern(&def.hostname);
    node.labels = builder.intern(&map_text(def.labels));
    node.start_ms = rfc3339_ns(&def.start_timestamp).map_or(0, |ns| ns / 1_000_000);
    builder.node(node);
}

#[derive(Deserialize)]
struct NodeDeathInfo<'a> {
    #[serde(default, borrow)]
    reason: Cow<'a, str>,
    #[serde(default, borrow, alias = "reasonMessage")]
    reason_message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct NodeTransition<'a> {
    #[serde(default, borrow)]
    state: Cow<'a, str>,
    #[serde(default, borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow)]
    resources: Option<&'a RawValue>,
    #[serde(default, borrow, alias = "deathInfo")]
    death_info: Option<NodeDeathInfo<'a>>,
}

#[derive(Deserialize)]
struct NodeLifecycle<'a> {
    #[serde(borrow, alias = "nodeId")]
    node_id: Cow<'a, str>,
    #[serde(default, borrow, alias = "stateTransitions")]
    state_transitions: Vec<NodeTransition<'a>>,
}

fn node_lifecycle(life: NodeLifecycle, builder: &mut Builder) {
    let Some(node_id) = Id::from_base64(&life.node_id) else {
        builder.stats.unknown_events += 1;
        return;
    };
    let mut node = Node::new(node_id);
    for t in &life.state_transitions {
        let ms = rfc3339_ns(&t.timestamp).map_or(0, |ns| ns / 1_000_000);
        if t.resources.is_some() {
            node.resources_total = resources_text(t.resources, builder);
        }
        if t.state == "DEAD" {
            node.state = NodeState::Dead;
            node.end_ms = node.end_ms.max(ms);
            if let Some(d) = &t.death_info {
                node.death_reason = builder.intern(&d.reason);
                node.death_message = builder.intern(&d.reason_message);
            }
        }
    }
    builder.node(node);
}
