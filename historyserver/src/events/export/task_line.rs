//! `EXPORT_TASK` lines, the bulk of a session, parsed by serde seeds straight into a reused
//! [`TaskUpdate`]. The derived structs these replace were several hundred bytes each, built
//! and then moved a few times per line: the copies alone cost a tenth of a load's CPU. Both
//! parsers use these seeds: sonic-rs on the fast path, serde_json on the lines it refuses.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{ErrorData, LogInfoData, ProfileEvents, RuntimeEnvInfo, event_ns, non_nil};
use crate::events::{RawJson, StateTimesInto, flex_u64, nullable_text, resources_text};
use crate::ids::Id;
use crate::model::{Builder, ErrorInfo, TaskDefinition, TaskType, TaskUpdate};

/// A string, borrowed from the line when it has no escapes; `null` reads as empty.
struct Str<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        nullable_text(d).map(Str)
    }
}

/// An integer written as a number or a string (see [`flex_u64`]).
struct FlexU64(Option<u64>);

impl<'de> Deserialize<'de> for FlexU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        flex_u64(d).map(FlexU64)
    }
}

// Keys are read as field names: matched as they are read, with no string kept.
/// The keys of a line that are read.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum LineKey {
    EventData,
    Timestamp,
    #[serde(other)]
    Other,
}

/// The keys of `event_data` that are read.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum DataKey {
    TaskId,
    AttemptNumber,
    JobId,
    TaskInfo,
    StateUpdates,
    ProfileEvents,
    #[serde(other)]
    Other,
}

/// The keys of `task_info` that are read.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum InfoKey {
    Name,
    FuncOrClassName,
    Type,
    Language,
    ParentTaskId,
    ActorId,
    PlacementGroupId,
    RequiredResources,
    RuntimeEnvInfo,
    #[serde(other)]
    Other,
}

/// The keys of `state_updates` that are read.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum StatesKey {
    NodeId,
    WorkerId,
    WorkerPid,
    StateTsNs,
    ErrorInfo,
    TaskLogInfo,
    #[serde(other)]
    Other,
}

/// A whole line, `{"event_data": {...}, "timestamp": <unix seconds>, ...}`, read into
/// `update`; `R` is how the parser keeps a JSON value whole.
pub(super) struct Line<'a, R> {
    update: &'a mut TaskUpdate,
    builder: &'a mut Builder,
    raw: PhantomData<R>,
}

impl<'a, R> Line<'a, R> {
    pub(super) fn new(update: &'a mut TaskUpdate, builder: &'a mut Builder) -> Self {
        Line {
            update,
            builder,
            raw: PhantomData,
        }
    }
}

impl<'de, R: RawJson + Deserialize<'de>> DeserializeSeed<'de> for Line<'_, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: RawJson + Deserialize<'de>> Visitor<'de> for Line<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an export event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut timestamp, mut data) = (None, false);
        while let Some(key) = map.next_key()? {
            match key {
                LineKey::EventData => {
                    map.next_value_seed(Data::<R>::new(&mut *self.update, &mut *self.builder))?;
                    data = true;
                }
                LineKey::Timestamp => timestamp = map.next_value::<FlexU64>()?.0,
                LineKey::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        if !data {
            return Err(de::Error::missing_field("event_data"));
        }
        self.update.event_ns = event_ns(timestamp);
        Ok(())
    }
}

/// A task event's `event_data`, read into `update`.
pub(super) struct Data<'a, R> {
    update: &'a mut TaskUpdate,
    builder: &'a mut Builder,
    raw: PhantomData<R>,
}

impl<'a, R> Data<'a, R> {
    pub(super) fn new(update: &'a mut TaskUpdate, builder: &'a mut Builder) -> Self {
        Data {
            update,
            builder,
            raw: PhantomData,
        }
    }
}

impl<'de, R: RawJson + Deserialize<'de>> DeserializeSeed<'de> for Data<'_, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: RawJson + Deserialize<'de>> Visitor<'de> for Data<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a task event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Data {
            update, builder, ..
        } = self;
        // A task event without a task id is corrupt; one whose id cannot be read is unknown.
        let mut has_task_id = false;
        while let Some(key) = map.next_key()? {
            match key {
                DataKey::TaskId => {
                    update.task_id = Id::from_base64(&map.next_value::<Str>()?.0);
                    has_task_id = true;
                }
                DataKey::AttemptNumber => update.attempt = map.next_value()?,
                DataKey::JobId => update.job_id = Id::from_base64(&map.next_value::<Str>()?.0),
                DataKey::TaskInfo => map.next_value_seed(Info::<R> {
                    def: &mut update.definition,
                    builder: &mut *builder,
                    raw: PhantomData,
                })?,
                DataKey::StateUpdates => map.next_value_seed(States {
                    update: &mut *update,
                    builder: &mut *builder,
                })?,
                DataKey::ProfileEvents => {
                    if let Some(profile) = map.next_value::<Option<ProfileEvents>>()? {
                        update.profile = Some(profile.to_model(builder));
                    }
                }
                DataKey::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        if !has_task_id {
            return Err(de::Error::missing_field("task_id"));
        }
        // The job id may come after the definition.
        if let Some(def) = &mut update.definition {
            def.job_id = update.job_id;
        }
        Ok(())
    }
}

/// `task_info`: the attempt's definition, `null` for none.
struct Info<'a, R> {
    def: &'a mut Option<TaskDefinition>,
    builder: &'a mut Builder,
    raw: PhantomData<R>,
}

impl<'de, R: RawJson + Deserialize<'de>> DeserializeSeed<'de> for Info<'_, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, R: RawJson + Deserialize<'de>> Visitor<'de> for Info<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a task definition or null")
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let builder = self.builder;
        let def = self.def.insert(TaskDefinition::default());
        while let Some(key) = map.next_key()? {
            match key {
                InfoKey::Name => def.name = builder.intern(&map.next_value::<Str>()?.0),
                InfoKey::FuncOrClassName => {
                    def.func_or_class_name = builder.intern(&map.next_value::<Str>()?.0)
                }
                InfoKey::Type => def.task_type = TaskType::from_name(&map.next_value::<Str>()?.0),
                InfoKey::Language => def.language = builder.intern(&map.next_value::<Str>()?.0),
                InfoKey::ParentTaskId => def.parent_task_id = non_nil(&map.next_value::<Str>()?.0),
                InfoKey::ActorId => def.actor_id = non_nil(&map.next_value::<Str>()?.0),
                InfoKey::PlacementGroupId => {
                    def.placement_group_id = non_nil(&map.next_value::<Str>()?.0)
                }
                InfoKey::RequiredResources => {
                    let raw = map.next_value::<Option<R>>()?;
                    def.required_resources = resources_text(raw.as_ref(), builder);
                }
                InfoKey::RuntimeEnvInfo => {
                    if let Some(env) = map.next_value::<Option<RuntimeEnvInfo<'de, R>>>()? {
                        def.serialized_runtime_env = builder.intern(&env.serialized_runtime_env);
                        def.runtime_env_config = builder.intern(
                            env.runtime_env_config
                                .as_ref()
                                .map(|r| r.json())
                                .unwrap_or_default(),
                        );
                    }
                }
                InfoKey::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(())
    }
}

/// `state_updates`: state times and execution fields, `null` for none.
struct States<'a> {
    update: &'a mut TaskUpdate,
    builder: &'a mut Builder,
}

impl<'de> DeserializeSeed<'de> for States<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for States<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("task state updates or null")
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let States { update, builder } = self;
        while let Some(key) = map.next_key()? {
            match key {
                StatesKey::NodeId => update.node_id = Id::from_base64(&map.next_value::<Str>()?.0),
                StatesKey::WorkerId => {
                    update.worker_id = Id::from_base64(&map.next_value::<Str>()?.0)
                }
                StatesKey::WorkerPid => {
                    update.worker_pid = map.next_value::<Option<u32>>()?.filter(|p| *p > 0)
                }
                StatesKey::StateTsNs => map.next_value_seed(StateTimesInto(&mut update.states))?,
                StatesKey::ErrorInfo => {
                    update.error = map.next_value::<Option<ErrorData>>()?.map(|e| ErrorInfo {
                        error_type: builder.intern(&e.error_type),
                        message: e.error_message.into(),
                    })
                }
                StatesKey::TaskLogInfo => {
                    update.log_info = map
                        .next_value::<Option<LogInfoData>>()?
                        .map(|l| l.to_model(builder))
                }
                StatesKey::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(())
    }
}
