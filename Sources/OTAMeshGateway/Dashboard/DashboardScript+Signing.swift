extension DashboardScript {
    /// Part 4: admin commands signed in the browser with the admin's own Ed25519 or ECDSA P-256 key (the PEM
    /// `otamesh keys generate` writes), held only in this page's memory: the canonical form and
    /// the envelope exactly as `SignedCommand` writes them, so every gateway verifies them as it
    /// verifies the CLI's.
    static let signing = #"""
        const KEY = { key: null, kind: null, keyID: null, name: null };
        const INSECURE = 'this page is not a secure context, so the browser offers no signing here: open the dashboard over HTTPS '
          + '(https://GATEWAY:8071/ui/, with the site CA installed in this browser) or on 127.0.0.1; tokens still work';
        const hex = bytes => Array.from(new Uint8Array(bytes), b => b.toString(16).padStart(2, '0')).join('');
        const utf8 = s => new TextEncoder().encode(s);

        // securesystemslib's canonical JSON: sorted keys, no whitespace, only " and \ escaped.
        function canonical(v) {
          if (v === null) return 'null';
          if (typeof v === 'boolean') return v ? 'true' : 'false';
          if (typeof v === 'number') { if (!Number.isInteger(v)) throw new Error('canonical JSON has integers only'); return String(v); }
          if (typeof v === 'string') return '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
          if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
          return '{' + Object.keys(v).sort(byCodePoint).map(k => canonical(k) + ':' + canonical(v[k])).join(',') + '}';
        }
        function byCodePoint(a, b) {
          const x = Array.from(a, c => c.codePointAt(0)), y = Array.from(b, c => c.codePointAt(0));
          for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
          return x.length - y.length;
        }
        // JSON text as `JSONValue.prettyBytes` writes it: two-space indent, sorted keys, "key": value.
        function escaped(s) {
          let out = '"';
          for (const c of s) {
            const n = c.codePointAt(0);
            out += c === '"' ? '\\"' : c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t'
              : n < 0x20 ? '\\u' + n.toString(16).padStart(4, '0') : c;
          }
          return out + '"';
        }
        function pretty(v, level) {
          const pad = n => '\n' + '  '.repeat(n);
          if (typeof v === 'string') return escaped(v);
          if (Array.isArray(v) && v.length) return '[' + v.map(x => pad(level + 1) + pretty(x, level + 1)).join(',') + pad(level) + ']';
          if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length)
            return '{' + Object.keys(v).sort(byCodePoint).map(k => pad(level + 1) + escaped(k) + ': ' + pretty(v[k], level + 1)).join(',') + pad(level) + '}';
          return canonical(v);
        }
        const envelopeText = (signed, signatures) => pretty({ signed, signatures }, 0) + '\n';

        // The key types a browser signs with: Ed25519 (the default of `otamesh keys generate`) and
        // ECDSA P-256 (`--type ecdsa`); RSA admin keys sign with the CLI only.
        const KEY_TYPES = [
          { type: 'ed25519', scheme: 'ed25519', importAs: { name: 'Ed25519' }, signAs: { name: 'Ed25519' } },
          { type: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', importAs: { name: 'ECDSA', namedCurve: 'P-256' }, signAs: { name: 'ECDSA', hash: 'SHA-256' } },
        ];
        const base64url = s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), c => c.charCodeAt(0));
        // The public key as the site trust lists it: Ed25519 as hex, ECDSA as the SPKI PEM
        // swift-crypto writes (64-column base64, then one newline).
        async function publicValue(kind, jwk) {
          if (kind.type === 'ed25519') return hex(base64url(jwk.x));
          const pub = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, kind.importAs, true, ['verify']);
          const b64 = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.exportKey('spki', pub))));
          return '-----BEGIN PUBLIC KEY-----\n' + b64.match(/.{1,64}/g).join('\n') + '\n-----END PUBLIC KEY-----\n';
        }
        async function loadKey(file) {
          if (!window.isSecureContext || !window.crypto || !crypto.subtle) throw new Error(INSECURE);
          const text = await file.text();
          const body = text.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
          if (!/^[A-Za-z0-9+/=]+$/.test(body) || !text.includes('BEGIN PRIVATE KEY')) throw new Error(file.name + ': not a PEM private key (PKCS#8)');
          const der = Uint8Array.from(atob(body), c => c.charCodeAt(0));
          let kind = null, key = null;
          for (const k of KEY_TYPES) {
            try { key = await crypto.subtle.importKey('pkcs8', der, k.importAs, true, ['sign']); kind = k; break; } catch (e) { /* the next type */ }
          }
          if (!key) throw new Error(file.name + ': not an Ed25519 or ECDSA P-256 key this browser can sign with (an RSA admin key signs with the CLI only)');
          const publicKey = await publicValue(kind, await crypto.subtle.exportKey('jwk', key));
          const keyID = hex(await crypto.subtle.digest('SHA-256', utf8(canonical({ keytype: kind.type, scheme: kind.scheme, keyval: { public: publicKey } }))));
          const site = S.signedIn && S.snap && S.snap.site;
          if (site && !site.admins.includes(keyID)) throw new Error(file.name + ': key ' + keyID.slice(0, 16) + '… is not a site admin key of ' + site.site);
          // Only the signing key is kept; the file's text and bytes go out of scope here.
          KEY.key = await crypto.subtle.importKey('pkcs8', der, kind.importAs, false, ['sign']);
          KEY.kind = kind;
          KEY.keyID = keyID;
          KEY.name = file.name.replace(/\.pem$/, '');
          der.fill(0);
          showKey();
          if (S.onKey) S.onKey();
          if (S.signedIn) render(false);
        }
        // ECDSA in WebCrypto signs as r || s; TUF (and swift-crypto) carry the DER SEQUENCE.
        function derSignature(raw) {
          const integer = b => { let i = 0; while (i < b.length - 1 && b[i] === 0) i++; const v = Array.from(b.slice(i)); return v[0] & 0x80 ? [0].concat(v) : v; };
          const r = integer(raw.slice(0, raw.length / 2)), s = integer(raw.slice(raw.length / 2));
          return new Uint8Array([0x30, r.length + s.length + 4, 0x02, r.length].concat(r, [0x02, s.length], s));
        }
        // This key's signature over `bytes`, as hex in the form its key type verifies.
        async function signBytes(bytes) {
          const raw = new Uint8Array(await crypto.subtle.sign(KEY.kind.signAs, KEY.key, bytes));
          return hex(KEY.kind.type === 'ecdsa' ? derSignature(raw) : raw);
        }
        function showKey() {
          const who = document.getElementById('who');
          who.textContent = !S.signedIn ? '' : (S.role === 'admin' ? 'signed in: admin' : 'signed in: read-only')
            + (KEY.key ? ' · key ' + KEY.name + ' (' + KEY.keyID.slice(0, 8) + ')' + (S.token ? '' : ', signing every request') : '');
        }
        async function sign(signed) {
          return { keyid: KEY.keyID, sig: await signBytes(utf8(canonical(signed))) };
        }
        const isoSeconds = () => new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
        function command(sequence, kind, payload) {
          return { _type: 'otamesh-command', site: S.snap.site.site, sequence, kind, issued: isoSeconds(), payload };
        }
        async function post(path, text) {
          return (await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text })).json();
        }
        // Adds this key's signature to a command the gateway holds (approval, m of n).
        async function cosign(id, sequence) {
          const held = await (await api('rollouts/' + encodeURIComponent(id) + '/commands/' + sequence)).json();
          if (held.signatures.some(s => s.keyid === KEY.keyID)) throw new Error('command #' + sequence + ' is signed by this key already: another admin key must approve it');
          const signatures = held.signatures.concat([await sign(held.signed)]);
          const text = envelopeText(held.signed, signatures);
          await post('rollouts/' + encodeURIComponent(id) + '/commands', text);
          return text;
        }
        async function control(r, kind, stage) {
          const payload = { rollout: r.id };
          if (stage !== undefined) payload.stage = stage;
          const signed = command(r.lastSequence + 1, 'rollout.' + kind, payload);
          const text = envelopeText(signed, [await sign(signed)]);
          await post('rollouts/' + encodeURIComponent(r.id) + '/commands', text);
          return text;
        }
        function keyPicker() {
          const secure = window.isSecureContext && window.crypto && crypto.subtle;
          const input = h('input', { id: 'key-file', type: 'file', accept: '.pem', 'aria-label': 'Admin key file (PEM)', disabled: !secure });
          const note = h('span', { role: 'status', class: secure ? null : 'bad' }, KEY.key ? 'key ' + KEY.name + ' loaded (kept in this page only)' : secure ? '' : 'no key signing: ' + INSECURE);
          input.addEventListener('change', async () => {
            note.textContent = '';
            try { await loadKey(input.files[0]); note.textContent = 'key ' + KEY.name + ' loaded (kept in this page only)'; }
            catch (e) { note.textContent = e.message; note.className = 'bad'; }
            input.value = '';
          });
          return h('span', {}, h('label', { for: 'key-file' }, 'Admin key: '), input, ' ', note);
        }

        // Controls of one rollout, each signed with the loaded key.
        function controls(r) {
          if (S.role !== 'admin' || !S.snap.site) return null;
          if (!KEY.key) return h('p', { class: 'muted' }, 'Load your admin key (top of the page) to approve, pause, resume, advance, retry or abort here.');
          // The last command's result outlives the re-render its own effect causes.
          const note = h('p', { id: 'command-note', role: 'status' }, S.detail.commandNote || '');
          const say = text => { S.detail.commandNote = text; const el = document.getElementById('command-note'); if (el) el.textContent = text; };
          const act = (label, run, cls) => h('button', { type: 'button', class: cls || null, on: { click: async () => {
            say(label + '…');
            try { await run(); say(label + ': signed and sent; the page follows as gateways apply it'); }
            catch (e) { say(label + ' not sent: ' + e.message); }
          } } }, label);
          const buttons = [];
          const pendingPlan = r.mode === 'awaiting approval';
          const pending = (r.pending || []).filter(p => p.sequence > 1).sort((a, b) => b.sequence - a.sequence)[0];
          if (pendingPlan) buttons.push(act('Approve plan', () => cosign(r.id, 1)));
          else if (pending) buttons.push(act('Approve ' + pending.kind.replace('rollout.', '') + ' #' + pending.sequence, () => cosign(r.id, pending.sequence)));
          if (r.mode === 'running') buttons.push(act('Pause', () => control(r, 'pause')));
          if (r.mode === 'paused' || r.mode === 'halted') buttons.push(act('Resume', () => control(r, 'resume')));
          if (r.mode === 'halted' || r.failed > 0) buttons.push(act('Retry failed', () => control(r, 'retry-failed')));
          if (r.plan && r.stage < r.plan.stages.length - 1 && (r.mode === 'running' || r.mode === 'paused'))
            buttons.push(act('Advance to stage ' + (r.stage + 2), () => control(r, 'advance', r.stage + 1)));
          if (r.mode !== 'aborted' && !r.mode.startsWith('completed')) buttons.push(act('Abort', () => control(r, 'abort'), 'danger'));
          return h('div', {}, h('div', { class: 'filters' }, buttons), note,
            h('p', { class: 'muted' }, 'Commands need ' + r.threshold + ' admin signatures: another admin approves in their own browser or with otamesh rollout approve.'));
        }

        """#
}
