//! Raw protobuf checks prost does not do: pbbp2 fields 1-4 are proto2
//! `required`, and the platform's gogo decoder rejects frames missing any of
//! them, while prost silently defaults them to 0.

/// Top-level field numbers present in `buf`, or why it is not protobuf.
pub(crate) fn field_numbers(buf: &[u8]) -> Result<Vec<u64>, String> {
    let mut seen = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let key = varint(buf, &mut i)?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0".to_owned());
        }
        match key & 7 {
            0 => {
                varint(buf, &mut i)?;
            }
            1 => i = skip(buf, i, 8)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut i)?).map_err(|e| e.to_string())?;
                i = skip(buf, i, len)?;
            }
            5 => i = skip(buf, i, 4)?,
            w => return Err(format!("unsupported wire type {w}")),
        }
        seen.push(field);
    }
    Ok(seen)
}

fn skip(buf: &[u8], i: usize, n: usize) -> Result<usize, String> {
    let end = i.checked_add(n).ok_or("length overflow")?;
    if end > buf.len() {
        return Err("truncated field".to_owned());
    }
    Ok(end)
}

fn varint(buf: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".to_owned())
}

/// Why a client frame would be rejected by a proto2 decoder, if it would.
pub(crate) fn required_problem(buf: &[u8]) -> Option<String> {
    match field_numbers(buf) {
        Err(e) => Some(format!("undecodable frame: {e}")),
        Ok(seen) => {
            let missing: Vec<u64> = (1..=4).filter(|f| !seen.contains(f)).collect();
            (!missing.is_empty()).then(|| {
                format!("frame misses required field(s) {missing:?} (SeqID, LogID, service, method must always be encoded)")
            })
        }
    }
}
