//! Image preparation for convolutional networks: padding small images to a size, and the
//! standard CIFAR augmentation (random crops of the image padded by 4 pixels, and
//! horizontal flips), seeded per batch so that a resumed run sees the same batches.

use rand::{RngExt, SeedableRng};

use super::Images;

impl Images {
    /// The images centred on a `size` × `size` canvas of the background (black) colour:
    /// 28×28 MNIST digits become 32×32, the CIFAR ResNet input. Images already that size
    /// are returned unchanged; larger ones are an error (None).
    pub fn pad_to(&self, size: usize) -> Option<Images> {
        if self.height > size || self.width > size {
            return None;
        }
        let (top, left) = ((size - self.height) / 2, (size - self.width) / 2);
        let plane = size * size;
        let mut images = Vec::with_capacity(self.count * self.channels * plane);
        for img in self.images.chunks(self.features()) {
            for (c, channel) in img.chunks(self.height * self.width).enumerate() {
                let start = images.len();
                images.resize(start + plane, self.background[c]);
                for (y, row) in channel.chunks(self.width).enumerate() {
                    let at = start + (top + y) * size + left;
                    images[at..at + self.width].copy_from_slice(row);
                }
            }
        }
        Some(Images {
            images,
            height: size,
            width: size,
            ..self.clone()
        })
    }
}

/// Random crops and flips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Pad by this many background pixels on each side, then crop back at a random offset.
    pub crop_pad: usize,
    /// Mirror left-right with probability ½ (not for digits).
    pub flip: bool,
}

/// Augments a batch in place: x [n, channels, height, width] as gathered from `data`.
pub fn augment_batch(x: &mut [f32], data: &Images, augment: Augment, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (h, w, pad) = (data.height, data.width, augment.crop_pad as i64);
    let mut source = vec![0.0; h * w];
    for img in x.chunks_mut(data.features()) {
        let dy = rng.random_range(-pad..=pad) as isize;
        let dx = rng.random_range(-pad..=pad) as isize;
        let flip = augment.flip && rng.random_range(0..2) == 1;
        for (c, channel) in img.chunks_mut(h * w).enumerate() {
            source.copy_from_slice(channel);
            for y in 0..h {
                for x in 0..w {
                    let sy = y as isize + dy;
                    let sx0 = if flip { w - 1 - x } else { x };
                    let sx = sx0 as isize + dx;
                    channel[y * w + x] = if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize
                    {
                        data.background[c]
                    } else {
                        source[sy as usize * w + sx as usize]
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Images {
        Images {
            images: (0..h * w).map(|v| v as f32).collect(),
            labels: vec![0],
            count: 1,
            channels: 1,
            height: h,
            width: w,
            classes: 10,
            background: vec![-1.0],
        }
    }

    #[test]
    fn pad_centres_the_image_on_the_background() {
        let padded = ramp(2, 3).pad_to(4).unwrap();
        #[rustfmt::skip]
        let want = [
            -1.0, -1.0, -1.0, -1.0,
             0.0,  1.0,  2.0, -1.0,
             3.0,  4.0,  5.0, -1.0,
            -1.0, -1.0, -1.0, -1.0,
        ];
        assert_eq!(padded.images, want);
        assert!(ramp(5, 5).pad_to(4).is_none());
    }

    #[test]
    fn crops_shift_and_flips_mirror() {
        let data = ramp(4, 4);
        let no_change = Augment {
            crop_pad: 0,
            flip: false,
        };
        let mut x = data.images.clone();
        augment_batch(&mut x, &data, no_change, 1);
        assert_eq!(x, data.images);
        // Over many seeds: every crop keeps 4×4 values drawn from the image or background,
        // some batches are shifted, and a flip-only augmentation mirrors rows.
        let (mut shifted, mut mirrored) = (false, false);
        for seed in 0..32 {
            let mut x = data.images.clone();
            augment_batch(
                &mut x,
                &data,
                Augment {
                    crop_pad: 1,
                    flip: false,
                },
                seed,
            );
            assert!(x.iter().all(|&v| v == -1.0 || (0.0..16.0).contains(&v)));
            shifted |= x != data.images;
            let mut x = data.images.clone();
            augment_batch(
                &mut x,
                &data,
                Augment {
                    crop_pad: 0,
                    flip: true,
                },
                seed,
            );
            if x != data.images {
                assert_eq!(&x[..4], &[3.0, 2.0, 1.0, 0.0]);
                mirrored = true;
            }
        }
        assert!(shifted && mirrored);
    }
}
