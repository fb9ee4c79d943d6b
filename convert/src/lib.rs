//! Everything that touches model files: checkpoint readers, variant writers, synthetic
//! checkpoints. Every other crate sees models through [`reference::WeightSource`].
//!
//! Reading is open → validate → view: a directory is opened, its index, headers and tensor set
//! are checked against the config (errors name the file and the tensor), and tensors are then
//! viewed in place through memory maps.

pub mod atomic;
pub mod behind;
pub mod cancel;
pub mod checkpoint;
pub mod companion;
pub mod error;
pub mod fuzzing;
pub mod gguf;
pub mod inspect;
pub mod lock;
pub mod mlx;
pub mod mmap;
pub mod model;
pub mod names;
pub mod naming;
pub mod npy;
pub mod output;
pub mod publish;
pub mod runtime;
pub mod safetensors;
pub mod space;
pub mod synth;
pub mod units;
pub mod variant;

pub use checkpoint::Checkpoint;
pub use error::{ConvertError, Result};
pub use model::AnyModel;
pub use names::Layout;
pub use variant::{ConvertOptions, ConvertReport, Progress, Variant};

use reference::{Encoding, MatRef};

/// Implements [`reference::WeightSource`] for a memory-mapped model type with a `config: Config`
/// field, a `files` list whose items have `mapped() -> &MappedFile`, and a `view(id)` method:
/// weights are views into the maps, `release` drops their pages, `prefetch` maps them ahead.
macro_rules! mapped_weight_source {
    ($ty:ty) => {
        impl reference::WeightSource for $ty {
            fn config(&self) -> &reference::Config {
                &self.config
            }

            fn weight(
                &self,
                id: reference::WeightId,
            ) -> std::result::Result<reference::MatRef<'_>, reference::SourceError> {
                self.view(id).map_err(Into::into)
            }

            fn release(&self, id: reference::WeightId) {
                if let Ok(m) = self.view(id) {
                    $crate::release_view(&m, self.files.iter().map(|f| f.mapped()));
                }
            }

            fn prefetch(&self, bytes: &[u8]) {
                for f in self.files.iter().map(|f| f.mapped()) {
                    f.populate_slice(bytes);
                }
            }
        }
    };
}
pub(crate) use mapped_weight_source;

/// Drops the pages of every slice `m` reads from whichever of `maps` holds them (they stay in
/// the page cache). What `WeightSource::release` does for every memory-mapped source.
pub fn release_view<'m>(m: &MatRef<'_>, maps: impl Iterator<Item = &'m mmap::MappedFile> + Clone) {
    for s in storage_slices(m) {
        for f in maps.clone() {
            f.release_slice(s);
        }
    }
}

/// The byte slices a view reads (for releasing their pages after use).
pub fn storage_slices<'a>(m: &MatRef<'a>) -> Vec<&'a [u8]> {
    match *m.encoding() {
        Encoding::Dense { data, .. } | Encoding::Ggml { data, .. } => vec![data],
        Encoding::Mxfp4 { blocks, scales, .. } => vec![blocks, scales],
        Encoding::Int8 { packed, scales, .. } => vec![packed, scales],
        Encoding::Affine {
            packed,
            scales,
            biases,
            ..
        } => vec![packed, scales, biases],
    }
}
