#!/usr/bin/env bash
# Obtains an image data set in the files rezero reads:
#   scripts/fetch-data.sh fashion-mnist|mnist|cifar10 [DIR]     (DIR defaults to data/NAME)
# fashion-mnist comes from Debian's dataset-fashion-mnist package where apt-get exists
# (apt-get download + dpkg-deb -x: no root needed), else from its official address;
# mnist and cifar10 from their official addresses (needs the internet).
set -euo pipefail

set_name=${1:-}
dir=${2:-data/$set_name}
case "$set_name" in
  fashion-mnist|mnist|cifar10) ;;
  *) echo "usage: $0 fashion-mnist|mnist|cifar10 [DIR]" >&2; exit 2 ;;
esac
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { # URL FILE
  if command -v curl >/dev/null; then curl -fsSL --retry 2 -o "$2" "$1"; else wget -q -O "$2" "$1"; fi
}

idx_files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

case "$set_name" in
  fashion-mnist)
    if command -v apt-get >/dev/null && (cd "$tmp" && apt-get download -qq dataset-fashion-mnist 2>/dev/null); then
      dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/pkg"
      cp "$tmp"/pkg/usr/share/datasets/fashion-mnist/*.gz "$dir"/
    else
      for f in $idx_files; do fetch "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/$f" "$dir/$f"; done
    fi
    ;;
  mnist)
    for f in $idx_files; do
      fetch "https://ossci-datasets.s3.amazonaws.com/mnist/$f" "$dir/$f" || fetch "http://yann.lecun.com/exdb/mnist/$f" "$dir/$f"
    done
    ;;
  cifar10)
    fetch "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" "$tmp/cifar.tar.gz"
    tar -xzf "$tmp/cifar.tar.gz" -C "$tmp"
    cp "$tmp"/cifar-10-batches-bin/*.bin "$dir"/
    ;;
esac
echo "$set_name is in $dir:"
ls -l "$dir"
