#!/usr/bin/env bash
# Screenshot of the desktop app in a real conversation.
#
#   scripts/gui-screenshot.sh [OUT.png]     (default docs/screenshots/chat.png)
#   SCENE=room scripts/gui-screenshot.sh    (default docs/screenshots/room.png)
#
# SCENE=room: before the app starts, alice (through her daemon) creates the room
# "book-club", bob asks her to join, she approves, and both write; then the app opens as
# alice on the room, bob writes again, and alice answers by typing into the app.
#
# Installs Xvfb, xdotool and ImageMagick when missing, starts a 3-server local cluster in a
# temporary folder, and runs the app under Xvfb as alice. bob (chat-cli) writes to alice;
# the script types a reply into the app's window with xdotool and presses Enter; bob
# receives it and answers. Once both directions have been delivered, the window is saved
# as a PNG. Everything started here is stopped at the end. Exits non-zero if a message
# does not arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENE=${SCENE:-chat}
OUT=${1:-docs/screenshots/$SCENE.png}
DIR=$(mktemp -d /tmp/chorus-gui.XXXXXX)
BASE_PORT=${GUI_BASE_PORT:-7500}
DISPLAY_NUM=${GUI_DISPLAY:-:77}
TIMEOUT=${GUI_TIMEOUT:-120}
PIDS=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v xdotool >/dev/null || need+=(xdotool)
command -v import >/dev/null || need+=(imagemagick)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== building (release)"
cargo build -q --release -p node -p keys -p client -p client-gui \
  --bin node --bin keygen --bin chat-cli --bin client-gui
BIN=./target/release

echo "== starting a 3-server cluster in $DIR"
$BIN/keygen cluster --servers 3 --clients 5 --out "$DIR" --base-port "$BASE_PORT" \
  --round-ms 500 --min-anonymity-set 3 >/dev/null
for i in 0 1 2; do
  RUST_LOG=warn $BIN/node --config "$DIR/node-$i.toml" >"$DIR/node-$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 1 150); do
  curl -s --max-time 1 "http://127.0.0.1:$((BASE_PORT + 100))/readyz" | grep -q ready && break
  sleep 0.2
done

cli() { $BIN/chat-cli --config "$DIR/client-$1.toml" "${@:2}"; }
cli_bg() { exec $BIN/chat-cli --config "$DIR/client-$1.toml" "${@:2}"; }
cli 1 register alice
cli 2 register bob
for j in 3 4 5; do cli $j register "cover-$j" >/dev/null; done
for j in 3 4 5; do
  cli_bg $j --json listen >"$DIR/cover-$j.out" 2>&1 &
  PIDS+=($!)
done
mkfifo "$DIR/bob.in"
cli_bg 2 --json listen --stdin <"$DIR/bob.in" >"$DIR/bob.out" 2>"$DIR/bob.err" &
PIDS+=($!)
exec 3>"$DIR/bob.in"

wait_for() { # file pattern what [count]
  local deadline=$((SECONDS + TIMEOUT))
  until [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "${4:-1}" ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "error: timed out waiting for $3" >&2
      tail -n 5 "$DIR/gui.log" "$DIR/bob.err" >&2 || true
      if [ -n "${WIN:-}" ]; then
        import -window "$WIN" "$DIR/failed.png" && echo "the window then: $DIR/failed.png" >&2
      fi
      exit 1
    fi
    sleep 0.5
  done
}

if [ "$SCENE" = room ]; then
  echo "== alice creates book-club, bob asks to join, alice approves"
  cli_bg 1 --json listen >"$DIR/alice.out" 2>&1 &
  ALICE=$!
  PIDS+=($ALICE)
  for _ in $(seq 1 50); do [ -S "$DIR/data/client-1/chat.sock" ] && break; sleep 0.2; done
  cli 1 room create book-club >/dev/null
  cli 2 room join book-club --via alice >/dev/null
  wait_for "$DIR/alice.out" "bob asks to join" "bob's request to reach alice"
  cli 1 room approve book-club bob >/dev/null
  wait_for "$DIR/bob.out" "you joined" "bob to be welcomed"
  cli 1 room send book-club "welcome, bob! we start with chapter three" >/dev/null
  cli 2 room send book-club "thanks! I am halfway through it" >/dev/null
  wait_for "$DIR/alice.out" "halfway through" "bob's message to reach alice"
  kill "$ALICE"; wait "$ALICE" 2>/dev/null || true
fi

echo "== starting the app under Xvfb ($DISPLAY_NUM)"
Xvfb "$DISPLAY_NUM" -screen 0 1100x720x24 -nolisten tcp >"$DIR/xvfb.log" 2>&1 &
PIDS+=($!)
export DISPLAY=$DISPLAY_NUM
for _ in $(seq 1 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done
$BIN/client-gui --config "$DIR/client-1.toml" --size 1100x720 >"$DIR/gui.log" 2>&1 &
PIDS+=($!)
GUI=$!
WIN=
for _ in $(seq 1 100); do
  WIN=$(xdotool search --name '^Chorus$' 2>/dev/null | head -1 || true)
  [ -n "$WIN" ] && break
  kill -0 $GUI 2>/dev/null || { cat "$DIR/gui.log"; echo "error: the app exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$WIN" ] || { echo "error: no app window appeared" >&2; exit 1; }


if [ "$SCENE" = room ]; then
  sleep 4 # the app opens on the room, its history loaded
  echo "== bob writes in the room; alice answers by typing into the app"
  cli 2 room send book-club "who brings the tea this time?" >/dev/null
  sleep 2
  xdotool windowfocus --sync "$WIN" 2>/dev/null || true
  # Nothing moved the focus since the app opened on the room: click into the composer.
  xdotool mousemove --window "$WIN" 640 660 click 1
  sleep 0.5
  xdotool type --delay 20 "I will, and carol asked to join too"
  xdotool key Return
  wait_for "$DIR/bob.out" "carol asked to join too" "bob to receive alice's room message"
  sleep 3
  mkdir -p "$(dirname "$OUT")"
  import -window "$WIN" "$OUT"
  echo "== saved $OUT ($(stat -c %s "$OUT") bytes)"
  exit 0
fi

echo "== bob writes to alice"
echo "alice: hi alice, it's bob. nobody can tell who I'm writing to" >&3
sleep 4 # let the app receive it: bob appears as a contact and the conversation opens

echo "== alice replies by typing into the app"
xdotool windowfocus --sync "$WIN" 2>/dev/null || true
xdotool type --delay 20 "hi bob! the servers only ever see the sum of our shares"
xdotool key Return
wait_for "$DIR/bob.out" "the servers only ever see" "bob to receive alice's message"
echo "alice: see you at the library at six" >&3
wait_for "$DIR/bob.out" '"state":"sent"' "bob's answer to be sent" 2
sleep 3 # the app draws the last delivery states

mkdir -p "$(dirname "$OUT")"
import -window "$WIN" "$OUT"
echo "== saved $OUT ($(stat -c %s "$OUT") bytes)"
