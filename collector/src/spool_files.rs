//! The spool's segments among the followed files: each round they are followed up to their
//! completed appends, and the sealed ones storage holds whole are deleted from the spool.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ray_history_storage::layout::ClusterRef;

use crate::files::{Entry, Files, Source};
use crate::spool::{Segment, Spool};
use crate::tracker::FileStat;

/// Follows every segment in the spool (and forgets the removed ones); returns the listing,
/// for [`drop_sent`] after the round's uploads.
pub(crate) fn reconcile(entries: &mut Files, spool: &Spool, cluster: &ClusterRef) -> Vec<Segment> {
    let segments = spool.segments();
    let present: BTreeSet<&PathBuf> = segments.iter().map(|s| &s.path).collect();
    entries.retain(|path, e| e.source != Source::Spool || present.contains(path));
    for segment in &segments {
        let Ok(Some(stat)) = FileStat::of(&segment.path) else {
            continue;
        };
        let entry = entries.entry(segment.path.clone()).or_insert_with(|| {
            let key = cluster.node_events(&segment.session, &segment.node, segment.unix_millis);
            Entry::new(segment.session.clone(), key, Source::Spool, stat.id)
        });
        // Bytes past the completed appends may be a batch being written: not yet.
        entry.seen = Some(FileStat {
            len: stat.len.min(segment.size),
            ..stat
        });
        entry.limit = Some(segment.size);
    }
    segments
}

/// Deletes the sealed segments whose final size storage confirmed. `segments` is the
/// listing the round started with: a segment sealed since is deleted next round, after
/// its last bytes are uploaded.
pub(crate) fn drop_sent(entries: &mut Files, spool: &Spool, segments: &[Segment]) {
    for segment in segments.iter().filter(|s| s.sealed) {
        let Some(entry) = entries.get(&segment.path) else {
            continue;
        };
        let stored = entry.verified
            && entry.tracked.uploaded == segment.size
            && entry.seen.is_some_and(|s| s.id == entry.tracked.id);
        if !stored {
            continue;
        }
        match spool.remove(segment) {
            Ok(()) => {
                entries.remove(&segment.path);
            }
            Err(e) => {
                tracing::warn!(path = %segment.path.display(), error = %e, "cannot remove a sent events file")
            }
        }
    }
}
