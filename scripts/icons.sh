#!/usr/bin/env bash
# Makes every app icon from the one drawing, assets/icon.svg, and writes them to assets/icons/:
#   icon-{32,128,256,512}.png        the bundle icons Dioxus.toml lists (desktop bundles, dx)
#   android/mipmap-*/ic_launcher.png Android launcher icons, 48-192 px (mdpi..xxxhdpi), with
#                                    rounded corners as legacy launchers show them as drawn
#   android/play-store-512.png       the store listing icon
#   ios/AppIcon-{120,152,167,180}.png and ios/AppIcon-1024.png  iPhone/iPad home screen and the
#                                    App Store icon: square, no alpha channel (Apple refuses
#                                    an icon with one)
# Needs rsvg-convert (Debian: librsvg2-bin) and ImageMagick's convert. Run it after changing the
# drawing and commit the PNGs; the build does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
src=assets/icon.svg
out=assets/icons
if ! command -v rsvg-convert >/dev/null; then
  echo "installing librsvg2-bin for rsvg-convert"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends librsvg2-bin
fi
command -v convert >/dev/null || { echo "ImageMagick's convert is missing (Debian: imagemagick)" >&2; exit 1; }

png() { # size, svg, output
  mkdir -p "$(dirname "$3")"
  rsvg-convert -w "$1" -h "$1" "$2" -o "$3"
}

for s in 32 128 256 512; do
  png "$s" "$src" "$out/icon-$s.png"
done

# Android's legacy (non-adaptive) launcher icons are shown as drawn: round the corners.
rounded=$(mktemp --suffix=.svg)
trap 'rm -f "$rounded"' EXIT
sed 's|<rect id="bg" |<rect id="bg" rx="180" |' "$src" > "$rounded"
for d in mdpi:48 hdpi:72 xhdpi:96 xxhdpi:144 xxxhdpi:192; do
  png "${d#*:}" "$rounded" "$out/android/mipmap-${d%%:*}/ic_launcher.png"
done
png 512 "$src" "$out/android/play-store-512.png"

for s in 120 152 167 180 1024; do
  png "$s" "$src" "$out/ios/AppIcon-$s.png"
  convert "$out/ios/AppIcon-$s.png" -background '#c8102e' -alpha remove -alpha off "$out/ios/AppIcon-$s.png"
done
echo "icons written to $out/"
