//! Where the integer fields of a valid GGUF file are, for the fuzzer's GGUF edits
//! (`fuzz_mutate.rs`, `Kind::Gguf`): a walk over the format written for the test, independent
//! of the reader under test.

/// `(position, width)` of each integer field of `bytes`: the counts, every key's and string's
/// length, value type ids, numbers (the first few items of each array), array element types
/// and counts, and each tensor's name length, dim count, dims, type and offset. The walk stops
/// quietly where the bytes stop making sense (an edited seed).
pub fn fields(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut w = Walk { bytes, pos: 8, out: Vec::new() };
    w.walk();
    w.out
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    out: Vec<(usize, usize)>,
}

impl Walk<'_> {
    fn walk(&mut self) -> Option<()> {
        let tensors = self.int(8)?;
        let kvs = self.int(8)?;
        for _ in 0..kvs {
            self.string()?;
            let ty = self.int(4)?;
            self.value(ty, 0)?;
        }
        for _ in 0..tensors {
            self.string()?;
            let n_dims = self.int(4)?;
            for _ in 0..n_dims.min(8) {
                self.int(8)?;
            }
            self.int(4)?;
            self.int(8)?;
        }
        Some(())
    }

    /// Notes the `width`-byte field at the cursor and returns its value.
    fn int(&mut self, width: usize) -> Option<u64> {
        let field = self.bytes.get(self.pos..self.pos + width)?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(field);
        self.out.push((self.pos, width));
        self.pos += width;
        Some(u64::from_le_bytes(le))
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        self.pos = self.pos.checked_add(usize::try_from(n).ok()?).filter(|&p| p <= self.bytes.len())?;
        Some(())
    }

    fn string(&mut self) -> Option<()> {
        let n = self.int(8)?;
        self.skip(n)
    }

    /// A value of type id `ty`; fields past an array's fourth item are skipped, not noted.
    fn value(&mut self, ty: u64, depth: usize) -> Option<()> {
        let width = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string(),
            9 if depth < 4 => {
                let item = self.int(4)?;
                let count = self.int(8)?;
                for i in 0..count {
                    let noted = self.out.len();
                    self.value(item, depth + 1)?;
                    if i >= 4 {
                        self.out.truncate(noted);
                    }
                }
                return Some(());
            }
            _ => return None,
        };
        self.int(width).map(|_| ())
    }
}
