use super::*;

#[test]
fn chrome_cuts_only_the_answer() {
    let mut st = RunState::new("r1");
    let started = pb::WorkerEvent {
        seq: 1,
        run_id: "r1".into(),
        kind: Some(Kind::RunStarted(pb::RunStarted::default())),
        ..Default::default()
    };
    st.apply(&started);
    let delta = |seq, d: &str| pb::WorkerEvent {
        seq,
        run_id: "r1".into(),
        kind: Some(Kind::TextDelta(pb::TextDelta {
            item_id: "i".into(),
            delta: d.into(),
        })),
        ..Default::default()
    };
    st.apply(&delta(2, "fn main() { \"x\" }\n"));
    let a = render::render(&st, &RenderOptions::default());
    st.apply(&delta(3, "more {answer}"));
    let b = render::render(&st, &RenderOptions::default());
    assert_ne!(a.json, b.json);
    assert_eq!(chrome(&a), chrome(&b));
    assert!(!chrome(&a).contains("fn main"));
}

fn run_event(seq: u64, at_ms: i64, kind: Kind) -> pb::WorkerEvent {
    pb::WorkerEvent {
        seq,
        run_id: "r1".into(),
        at_ms,
        kind: Some(kind),
        ..Default::default()
    }
}

fn text(seq: u64, at_ms: i64, d: &str) -> pb::WorkerEvent {
    run_event(
        seq,
        at_ms,
        Kind::TextDelta(pb::TextDelta {
            item_id: "i".into(),
            delta: d.into(),
        }),
    )
}

/// A live main card on a started run, created from its first render.
fn live_card() -> (Arc<Mutex<LiveRun>>, LiveCard) {
    let mut state = RunState::new("r1");
    state.apply(&run_event(
        1,
        1_000,
        Kind::RunStarted(pb::RunStarted::default()),
    ));
    let run = Arc::new(Mutex::new(LiveRun {
        state,
        stop_token: None,
        open: true,
    }));
    let created = {
        let live = lock(&run);
        render::render(&live.state, &live_options(&live, RenderMode::Main))
    };
    let card = LiveCard::new(run.clone(), RenderMode::Main, Some(Shown::of(&created)));
    (run, card)
}

fn apply(run: &Mutex<LiveRun>, ev: &pb::WorkerEvent) {
    lock(run).state.apply(ev);
}

fn sent(card: &LiveCard) -> Option<LiveUpdate> {
    let u = card.pull();
    card.settle(true);
    u
}

fn answer_of(u: &Option<LiveUpdate>) -> Option<String> {
    match u {
        Some(LiveUpdate::Content {
            element_id,
            content,
        }) => {
            assert_eq!(element_id, ANSWER_ELEMENT_ID);
            Some(content.clone())
        }
        _ => None,
    }
}

fn is_card(u: &Option<LiveUpdate>) -> bool {
    matches!(u, Some(LiveUpdate::Card(_)))
}

#[test]
fn a_live_card_sends_only_what_changed_since_the_platform_accepted() {
    let (run, card) = live_card();
    assert_eq!(card.pull(), None, "nothing new since the card was created");
    apply(&run, &text(2, 1_000, "hello"));
    // The footer did not move: the answer alone.
    assert_eq!(answer_of(&sent(&card)).as_deref(), Some("hello"));
    assert_eq!(sent(&card), None);
    apply(&run, &text(3, 1_000, " world"));
    assert_eq!(answer_of(&sent(&card)).as_deref(), Some("hello world"));
    // A structural change with the same answer: the whole card.
    apply(
        &run,
        &run_event(
            4,
            1_000,
            Kind::ToolStart(pb::ToolStart {
                item_id: "t1".into(),
                title: "ls".into(),
                ..Default::default()
            }),
        ),
    );
    let u = sent(&card);
    assert!(is_card(&u), "{u:?}");
    assert_eq!(sent(&card), None);
}

#[test]
fn after_a_whole_card_a_grown_answer_streams_before_the_rest() {
    let (run, card) = live_card();
    apply(&run, &text(2, 1_000, "a"));
    assert!(answer_of(&sent(&card)).is_some());
    // Footer (elapsed time) and answer both change.
    apply(&run, &text(3, 1_500, "b"));
    assert!(is_card(&sent(&card)), "after content: the whole card");
    apply(&run, &text(4, 2_000, "c"));
    assert_eq!(
        answer_of(&sent(&card)).as_deref(),
        Some("abc"),
        "after a whole card: the answer first"
    );
    let u = sent(&card);
    assert!(is_card(&u), "then the rest follows: {u:?}");
    let Some(LiveUpdate::Card(json)) = u else {
        return;
    };
    assert!(json.contains("abc"));
    assert_eq!(sent(&card), None);
}

#[test]
fn a_refused_update_is_sent_again_from_what_was_accepted() {
    let (run, card) = live_card();
    apply(&run, &text(2, 1_000, "x"));
    assert_eq!(answer_of(&card.pull()).as_deref(), Some("x"));
    card.settle(false);
    apply(&run, &text(3, 1_000, "y"));
    assert_eq!(answer_of(&sent(&card)).as_deref(), Some("xy"));
    // A new writer knows nothing of what the platform shows.
    card.reset();
    assert!(is_card(&sent(&card)));
    assert_eq!(sent(&card), None);
}

#[test]
fn a_closed_run_is_not_rendered_live() {
    let (run, card) = live_card();
    apply(&run, &text(2, 1_000, "x"));
    {
        let mut live = lock(&run);
        live.open = false;
        live.state
            .apply(&run_event(3, 1_000, Kind::Done(pb::Done::default())));
    }
    assert_eq!(card.pull(), None);
}

#[test]
fn chat_of_scopes() {
    assert_eq!(pb::Scope::chat_of("chat:oc_1"), "oc_1");
    assert_eq!(pb::Scope::chat_of("topic:oc_1:omt_2"), "oc_1");
    assert_eq!(pb::Scope::chat_of("chat:console"), "console");
    assert_eq!(pb::Scope::chat_of("doc:x"), "");
}

/// A card surface whose worker announced `caps` (no request is ever sent).
fn surface(dir: &std::path::Path, caps: &[&str]) -> CardSurface {
    let http = OpenApiClient::new(
        "http://127.0.0.1:9",
        "cli_test",
        fcx_config::Secret::new("s3cr3t"),
        crate::feishu::http::RetryPolicy::default(),
    )
    .expect("client");
    CardSurface::new(
        http,
        SharedKeys::open(dir).expect("keys"),
        Default::default(),
        "t".into(),
        WorkerCaps::of(caps),
    )
}

#[test]
fn a_run_card_offers_stop_only_when_the_worker_announced_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut started = run_event(
        1,
        1_000,
        Kind::RunStarted(pb::RunStarted {
            fingerprint: "fp".into(),
            requester: Some(pb::Actor {
                id: "ou_1".into(),
                name: String::new(),
            }),
            ..Default::default()
        }),
    );
    started.scope = "chat:oc_1".into();
    started.reply_to = "om_1".into();
    let with = surface(dir.path(), &[fcx_proto::caps::STOP]);
    assert!(with.sign_stop(&started).is_some());
    let without = surface(dir.path(), &[fcx_proto::caps::COMMAND_CARDS]);
    assert_eq!(without.sign_stop(&started), None);
}

#[test]
fn the_stop_button_is_signed_for_the_requester_the_run_names_and_no_one_else() {
    // The gateway keeps no table of who asked: a run card re-rendered from
    // the worker's log (a new fcxd) is signed from the event alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = surface(dir.path(), &[fcx_proto::caps::STOP]);
    let started = |requester: Option<&str>| {
        let mut ev = run_event(
            1,
            1_000,
            Kind::RunStarted(pb::RunStarted {
                fingerprint: "fp".into(),
                requester: requester.map(|id| pb::Actor {
                    id: id.into(),
                    name: String::new(),
                }),
                ..Default::default()
            }),
        );
        ev.scope = "chat:oc_1".into();
        ev.reply_to = "om_1".into();
        ev
    };
    let token = s
        .sign_stop(&started(Some("ou_asker")))
        .expect("a stop button");
    let claims = crate::ingress::callback::peek(&token, &s.keys.ring()).expect("signed");
    assert_eq!(claims.operator, "ou_asker");
    assert_eq!(s.sign_stop(&started(None)), None, "no requester, no button");
    assert_eq!(s.sign_stop(&started(Some(""))), None);
}
