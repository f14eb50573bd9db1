#!/usr/bin/env node
// A tiny QEMU guest agent client over the UNIX socket that QEMU binds to the guest's
// org.qemu.guest_agent.0 port. Used by boot-check.sh; prints JSON on stdout.
//
//   node qga.mjs SOCKET wait SECONDS              poll guest-sync until the agent answers
//   node qga.mjs SOCKET call COMMAND [ARGS_JSON]  one command; prints its "return"
//   node qga.mjs SOCKET exec SECONDS PATH [ARG…]  guest-exec, wait for it; prints
//                                                 {exitcode, stdout, stderr} (decoded)
//   node qga.mjs SOCKET shutdown                  guest-shutdown (powerdown; no reply by design)
//
// Each call connects anew and starts with guest-sync on a fresh id, so replies left in the channel
// by an earlier client are skipped rather than taken for ours.
import net from 'node:net';

const [socketPath, verb, ...rest] = process.argv.slice(2);

/** One connection: send JSON commands, await the reply whose shape we ask for. */
function connect(timeoutMs) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('connect timeout'));
    }, timeoutMs);
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.once('connect', () => {
      clearTimeout(timer);
      let buf = '';
      const waiters = [];
      sock.on('data', (d) => {
        // guest-sync-delimited would prefix 0xFF; strip any such bytes.
        buf += d.toString('latin1').replace(/\xff/g, '');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line) continue;
          let msg;
          try {
            msg = JSON.parse(line);
          } catch {
            continue;
          }
          const w = waiters.shift();
          if (w) w(msg);
        }
      });
      sock.on('error', () => {});
      const send = (obj) => sock.write(JSON.stringify(obj) + '\n');
      const next = (ms) =>
        new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error('reply timeout')), ms);
          waiters.push((m) => {
            clearTimeout(t);
            res(m);
          });
        });
      resolve({ sock, send, next });
    });
  });
}

async function session(syncTimeoutMs) {
  const c = await connect(2000);
  const id = Math.floor(Math.random() * 2 ** 31);
  c.send({ execute: 'guest-sync', arguments: { id } });
  const deadline = Date.now() + syncTimeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) {
      c.sock.destroy();
      throw new Error('guest-sync timeout');
    }
    let msg;
    try {
      msg = await c.next(left);
    } catch (e) {
      c.sock.destroy();
      throw e;
    }
    if (msg.return === id) break; // older replies (stale ids) are skipped
  }
  const call = async (execute, args, ms = 30000) => {
    c.send(args === undefined ? { execute } : { execute, arguments: args });
    const msg = await c.next(ms);
    if (msg.error) throw new Error(`${execute}: ${msg.error.class}: ${msg.error.desc}`);
    return msg.return;
  };
  return { ...c, call, close: () => c.sock.end() };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (verb === 'wait') {
    const deadline = Date.now() + Number(rest[0] ?? 120) * 1000;
    for (;;) {
      try {
        const s = await session(1500);
        s.close();
        console.log(JSON.stringify({ ok: true }));
        return;
      } catch {
        if (Date.now() > deadline) throw new Error('the guest agent did not answer in time');
        await sleep(250);
      }
    }
  }
  const s = await session(10000);
  try {
    if (verb === 'call') {
      const ret = await s.call(rest[0], rest[1] ? JSON.parse(rest[1]) : undefined);
      console.log(JSON.stringify(ret ?? null));
    } else if (verb === 'exec') {
      const [secs, path, ...arg] = rest;
      const { pid } = await s.call('guest-exec', { path, arg, 'capture-output': true });
      const deadline = Date.now() + Number(secs) * 1000;
      for (;;) {
        const st = await s.call('guest-exec-status', { pid });
        if (st.exited) {
          const dec = (b) => (b ? Buffer.from(b, 'base64').toString('utf8') : '');
          console.log(
            JSON.stringify({
              exitcode: st.exitcode ?? null,
              signal: st.signal ?? null,
              stdout: dec(st['out-data']),
              stderr: dec(st['err-data']),
            }),
          );
          break;
        }
        if (Date.now() > deadline) throw new Error(`guest-exec ${path} did not finish in ${secs} s`);
        await sleep(250);
      }
    } else if (verb === 'shutdown') {
      s.send({ execute: 'guest-shutdown', arguments: { mode: 'powerdown' } });
      await sleep(200); // no reply on success; give the write time to leave
      console.log(JSON.stringify({ sent: true }));
    } else {
      throw new Error(`unknown verb ${verb}`);
    }
  } finally {
    s.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`qga: ${e.message}`);
    process.exit(1);
  },
);
