use super::*;
use fcx_proto::v1::MediaItem;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-fake-png";

/// One attachment fcxd stored (`Ok(bytes)`) or skipped (`Err(reason)`).
type Seeded<'a> = (AttachmentKind, &'a str, Result<&'a [u8], &'a str>);

struct Store {
    _d: tempfile::TempDir,
    media: PathBuf,
    ws: PathBuf,
}

fn store() -> Store {
    let d = tempfile::tempdir().expect("tmp");
    let media = d.path().join("media");
    let ws = d.path().join("ws");
    for p in [media.join("blobs"), media.join("msgs"), ws.clone()] {
        std::fs::create_dir_all(p).expect("dirs");
    }
    Store { _d: d, media, ws }
}

impl Store {
    /// A message whose attachments fcxd stored (`Some(bytes)`) or skipped.
    fn message(&self, id: &str, atts: &[Seeded<'_>]) -> Inbound {
        let mut items = Vec::new();
        let mut attachments = Vec::new();
        for (i, (kind, name, what)) in atts.iter().enumerate() {
            let key = format!("{id}-k{i}");
            let item = match what {
                Ok(bytes) => {
                    let sha = fcx_proto::media::content_hash(bytes);
                    std::fs::write(blob_path(&self.media, &sha), bytes).expect("blob");
                    MediaItem {
                        key: key.clone(),
                        sha256: sha,
                        size: bytes.len() as u64,
                        skipped: String::new(),
                    }
                }
                Err(why) => MediaItem {
                    key: key.clone(),
                    skipped: why.to_string(),
                    ..Default::default()
                },
            };
            items.push(item);
            attachments.push(Attachment {
                kind: *kind as i32,
                key,
                name: name.to_string(),
                ..Default::default()
            });
        }
        let m = MediaManifest {
            message_id: id.into(),
            items,
        };
        std::fs::write(manifest_path(&self.media, id), m.encode_to_vec()).expect("manifest");
        Inbound {
            message_id: id.into(),
            attachments,
            ..Default::default()
        }
    }
}

#[test]
fn nine_images_give_eight_and_the_ninth_is_named() {
    let s = store();
    let mut msgs: Vec<Inbound> = (0..9)
        .map(|i| {
            let bytes = [PNG, format!("{i}").as_bytes()].concat();
            s.message(
                &format!("om_{i}"),
                &[(AttachmentKind::Image, "", Ok(&bytes))],
            )
        })
        .collect();
    let p = place_all(&s.media, &s.ws, &mut msgs);
    assert_eq!(p.images.len(), 8);
    assert!(
        p.images
            .iter()
            .all(|i| i.starts_with(s.ws.join(".fcx/inbox")))
    );
    assert!(
        p.images
            .iter()
            .all(|i| i.extension().is_some_and(|e| e == "png"))
    );
    assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
    assert!(p.skipped[0].contains("too many attachments (at most 8 per run)"));
    assert_eq!(
        msgs[8].attachments[0].skipped,
        "too many attachments (at most 8 per run)"
    );
    assert!(
        msgs[0].attachments[0]
            .local_path
            .starts_with(".fcx/inbox/image-")
    );
}

#[test]
fn wrong_types_oversize_and_failed_downloads_are_skipped_with_their_reason() {
    let s = store();
    let big = vec![b'x'; (MAX_FILE_BYTES + 1) as usize];
    let mut msgs = vec![s.message(
        "om_1",
        &[
            (
                AttachmentKind::Image,
                "",
                Ok(b"#!/bin/sh\necho not an image"),
            ),
            (AttachmentKind::Image, "", Ok(b"BM\x36\0\0\0 a bitmap")),
            (AttachmentKind::File, "huge.bin", Ok(&big)),
            (
                AttachmentKind::File,
                "gone.txt",
                Err("the platform refused the download (234043)"),
            ),
            (AttachmentKind::File, "../../notes.txt", Ok(b"notes")),
        ],
    )];
    // A message whose manifest never came.
    msgs.push(Inbound {
        message_id: "om_2".into(),
        attachments: vec![Attachment {
            kind: AttachmentKind::File as i32,
            key: "k".into(),
            name: "late.txt".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    let p = place_all(&s.media, &s.ws, &mut msgs);
    let a = &msgs[0].attachments;
    assert_eq!(
        a[0].skipped,
        "not a supported image type (png, jpeg, gif or webp)"
    );
    assert_eq!(
        a[1].skipped,
        "not a supported image type (png, jpeg, gif or webp)"
    );
    assert_eq!(a[2].skipped, "too big (over 20 MiB)");
    assert_eq!(a[3].skipped, "the platform refused the download (234043)");
    assert_eq!(a[4].skipped, "");
    assert_eq!(a[4].local_path, ".fcx/inbox/notes.txt");
    assert_eq!(
        std::fs::read(s.ws.join(".fcx/inbox/notes.txt")).expect("copied"),
        b"notes"
    );
    assert_eq!(
        msgs[1].attachments[0].skipped,
        "the download did not finish in time"
    );
    assert!(p.images.is_empty());
    assert_eq!(p.skipped.len(), 5, "{:?}", p.skipped);
    assert!(
        p.skipped
            .iter()
            .any(|l| l == "huge.bin: too big (over 20 MiB)")
    );
}

#[test]
fn a_run_carries_at_most_its_byte_budget() {
    let s = store();
    let chunk = vec![b'y'; (MAX_FILE_BYTES - 10) as usize];
    let mut msgs: Vec<Inbound> = (0..3u8)
        .map(|i| {
            let mut b = chunk.clone();
            b.push(i);
            s.message(
                &format!("om_{i}"),
                &[(AttachmentKind::File, "part.bin", Ok(&b))],
            )
        })
        .collect();
    let p = place_all(&s.media, &s.ws, &mut msgs);
    assert!(p.bytes <= MAX_RUN_BYTES);
    assert_eq!(
        msgs[2].attachments[0].skipped,
        "over the 50 MiB this run may carry"
    );
    assert_eq!(msgs[1].attachments[0].local_path, ".fcx/inbox/part (2).bin");
}

#[tokio::test]
async fn prepare_waits_for_the_manifest_and_stops_on_cancel() {
    let s = store();
    let mut msgs = vec![Inbound {
        message_id: "om_late".into(),
        attachments: vec![Attachment {
            kind: AttachmentKind::File as i32,
            key: "k".into(),
            name: "a.txt".into(),
            ..Default::default()
        }],
        ..Default::default()
    }];
    let cancel = CancellationToken::new();
    cancel.cancel();
    let p = prepare(
        &s.media,
        &s.ws,
        &mut msgs,
        Duration::from_secs(600),
        &cancel,
    )
    .await;
    assert_eq!(p.skipped, ["a.txt: the download did not finish in time"]);
    // Once the manifest is there, the same message goes through.
    let mut msgs = vec![s.message("om_ok", &[(AttachmentKind::File, "a.txt", Ok(b"abc"))])];
    let p = prepare(
        &s.media,
        &s.ws,
        &mut msgs,
        Duration::from_secs(600),
        &CancellationToken::new(),
    )
    .await;
    assert!(p.skipped.is_empty());
    assert_eq!(msgs[0].attachments[0].local_path, ".fcx/inbox/a.txt");
}

#[test]
fn an_unnamed_attachment_is_named_by_its_kind_with_the_right_article() {
    let shown = |kind: AttachmentKind| {
        let mut a = Attachment::default();
        a.set_kind(kind);
        shown_name(&a)
    };
    assert_eq!(shown(AttachmentKind::Image), "an image");
    assert_eq!(shown(AttachmentKind::Audio), "an audio");
    assert_eq!(shown(AttachmentKind::Video), "a video");
    assert_eq!(shown(AttachmentKind::File), "a file");
    assert_eq!(shown(AttachmentKind::Sticker), "a sticker");
    assert_eq!(shown(AttachmentKind::Unspecified), "an attachment");
    let mut named = Attachment {
        name: "notes.txt".into(),
        ..Attachment::default()
    };
    named.set_kind(AttachmentKind::File);
    assert_eq!(shown_name(&named), "notes.txt");
}
