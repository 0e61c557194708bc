//! Catch-up and membership: a member down while twice the snapshot interval is written
//! catches up by snapshot; a fourth member joins at runtime (and restarting it with the same
//! `--join` is harmless); removed members leave and the rest go on.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::{TestCluster, deadline, serial, wait_until};

const SNAPSHOT_ENTRIES: u64 = 50;

async fn write_n(
    c: &mut TestCluster,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> BTreeMap<String, String> {
    let leader = c.leader_within(support::LEADER_WAIT).await;
    let lc = c.client(leader);
    let mut out = BTreeMap::new();
    for i in range {
        let (k, v) = (format!("{prefix}{i:04}"), format!("value-{i}"));
        support::put_retrying(&lc, &k, &v, Duration::from_secs(10)).await;
        out.insert(k, v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_for_two_snapshot_intervals_catches_up_by_snapshot() {
    let _serial = serial().await;
    deadline(150, async {
        let mut c = TestCluster::start_with(3, |o| o.snapshot_entries = Some(SNAPSHOT_ENTRIES)).await;
        let mut written = write_n(&mut c, "s/", 0..10).await;
        let commit = c.leader_commit().await;
        for id in c.ids() {
            c.wait_applied(id, commit, support::CATCH_UP_WAIT).await;
        }
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let down = c.other_than(&[leader]);
        let applied_at_kill = c.status(down).await.expect("status").applied;
        c.kill(down).expect("kill -9 a follower");

        let n = usize::try_from(2 * SNAPSHOT_ENTRIES + 10).expect("fits");
        written.extend(write_n(&mut c, "s/", 10..10 + n).await);
        // The leader compacted past everything the member has: entries alone cannot catch it up.
        let leader = c.leader_within(support::LEADER_WAIT).await;
        wait_until(Duration::from_secs(20), "the leader snapshots past the member", || async {
            c.status(leader)
                .await
                .is_some_and(|s| s.snapshot_index > applied_at_kill + SNAPSHOT_ENTRIES)
        })
        .await;
        let before = support::installed_snapshots(&c.data_dir(down));

        c.restart(down).expect("restart");
        support::wait_has_all(&c, down, "s/", &written, support::CATCH_UP_WAIT).await;
        let after = support::installed_snapshots(&c.data_dir(down));
        let new: Vec<&(u64, u64)> = after
            .iter()
            .filter(|s| !before.contains(s) && s.0 > applied_at_kill)
            .collect();
        assert!(
            !new.is_empty(),
            "member {down} caught up without installing a snapshot from the leader \
             (installed markers before {before:?}, after {after:?}; applied at kill {applied_at_kill})"
        );
        let s = c.status(down).await.expect("status");
        assert!(s.snapshot_index > applied_at_kill, "{s:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_member_joins_at_runtime_and_gets_every_value() {
    let _serial = serial().await;
    deadline(150, async {
        let mut c = TestCluster::start(3).await;
        let mut written = write_n(&mut c, "j/", 0..30).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let via = c.other_than(&[leader]);
        let new = c
            .add_joining_member(via, Vec::new())
            .expect("start a joining member");
        assert_eq!(new, 4);

        let lc = c.client(leader);
        wait_until(Duration::from_secs(30), "member 4 is a voter", || async {
            lc.members()
                .await
                .is_ok_and(|ms| ms.iter().any(|m| m.id == new && m.voter))
        })
        .await;
        support::wait_has_all(&c, new, "j/", &written, support::CATCH_UP_WAIT).await;
        let m = lc.members().await.expect("members");
        let me = m.iter().find(|m| m.id == new).expect("listed");
        assert_eq!(me.http_addr, c.http_addr(new).to_string());
        assert_eq!(me.peer_addr, c.peer_addr(new).to_string());

        // Restarting it with the same --join is harmless.
        c.kill(new).expect("kill -9 the new member");
        c.restart(new).expect("restart with the same --join");
        written.extend(write_n(&mut c, "j/", 30..40).await);
        support::wait_has_all(&c, new, "j/", &written, support::CATCH_UP_WAIT).await;
        assert!(c.is_running(new), "the restarted member runs");
        let after = c.client(leader).members().await.expect("members");
        assert_eq!(after.len(), 4, "no duplicate or lost member: {after:?}");
        assert!(after.iter().all(|m| m.voter), "{after:?}");

        // With four voters, any three make progress: the joined member counts.
        let other = c.other_than(&[leader, new]);
        c.kill(other).expect("kill one of the founders");
        written.extend(write_n(&mut c, "j/", 40..45).await);
        support::wait_has_all(&c, new, "j/", &written, support::CATCH_UP_WAIT).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_members_leave_and_the_rest_go_on() {
    let _serial = serial().await;
    deadline(150, async {
        let mut c = TestCluster::start(3).await;
        let mut written = write_n(&mut c, "r/", 0..10).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let follower = c.other_than(&[leader]);

        // A follower, removed through the other follower (forwarded to the leader).
        let third = c.other_than(&[leader, follower]);
        let ms = c
            .client(third)
            .remove_member(follower)
            .await
            .expect("remove a follower");
        assert!(ms.iter().all(|m| m.id != follower), "{ms:?}");
        assert_eq!(ms.len(), 2);
        c.stop(follower).await.expect("stop the removed member");
        written.extend(write_n(&mut c, "r/", 10..20).await);
        for id in [leader, third] {
            support::wait_has_all(&c, id, "r/", &written, support::CATCH_UP_WAIT).await;
            let ms = c.client(id).members().await.expect("members");
            assert_eq!(ms.len(), 2, "member {id} sees two members: {ms:?}");
        }

        // Now the leader itself: it steps down and the last member leads alone.
        let ms = c
            .client(leader)
            .remove_member(leader)
            .await
            .expect("remove the leader");
        assert_eq!(ms.iter().map(|m| m.id).collect::<Vec<_>>(), [third]);
        c.stop(leader).await.expect("stop the removed leader");
        let next = c.leader_within(support::LEADER_WAIT).await;
        assert_eq!(next, third, "the remaining member leads");
        written.extend(write_n(&mut c, "r/", 20..30).await);
        support::wait_has_all(&c, third, "r/", &written, support::CATCH_UP_WAIT).await;
    })
    .await;
}
