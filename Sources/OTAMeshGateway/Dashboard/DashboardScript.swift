/// The dashboard's script, part 1: credentials, the live event stream, routing and the DOM
/// helper. Every string from a device or a peer goes into the page as a text node (`h`), never
/// as markup; links are built from this script's own routes with `encodeURIComponent`.
enum DashboardScript {
    static let core = #"""
        'use strict';
        const S = { token: null, signedIn: false, session: 0, role: null, snap: null, conn: 'idle', route: null, filters: { q: '', family: '', gateway: '' }, detail: {} };

        function h(tag, attrs, ...kids) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) {
            if (v === null || v === undefined || v === false) continue;
            if (k === 'on') { for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f); }
            else if (k === 'class') e.className = v;
            else e.setAttribute(k, v === true ? '' : String(v));
          }
          for (const kid of kids.flat(Infinity)) {
            if (kid === null || kid === undefined || kid === false) continue;
            e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
          }
          return e;
        }
        const link = (route, text) => h('a', { href: '#/' + route.map(encodeURIComponent).join('/') }, text);
        const sleep = ms => new Promise(r => setTimeout(r, ms));
        // The credential of one request: the bearer token, or (signed in with a key file) the
        // request signed with the admin's key, as the CLI's --key signs it (OTAMesh-Sig).
        async function auth(method, target, body) {
          if (S.token) return { Authorization: 'Bearer ' + S.token };
          const bodyHash = hex(await crypto.subtle.digest('SHA-256', utf8(body || '')));
          const time = Math.floor(Date.now() / 1000);
          const nonce = hex(crypto.getRandomValues(new Uint8Array(12)));
          const message = ['otamesh-admin-request/1', method.toUpperCase(), target, time, nonce, bodyHash].join('\n');
          const sig = await signBytes(utf8(message));
          return { Authorization: 'OTAMesh-Sig keyid=' + KEY.keyID + ', time=' + time + ', nonce=' + nonce + ', body=' + bodyHash + ', sig=' + sig };
        }
        const when = s => s ? new Date(s * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '';
        const ago = s => { if (!s) return ''; const d = Math.max(0, Date.now() / 1000 - s);
          return d < 90 ? Math.round(d) + ' s ago' : d < 5400 ? Math.round(d / 60) + ' min ago' : d < 172800 ? Math.round(d / 3600) + ' h ago' : Math.round(d / 86400) + ' days ago'; };
        const bytes = n => n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B';
        function table(headers, rows, label) {
          return h('div', { class: 'scroll' }, h('table', { 'aria-label': label },
            h('thead', {}, h('tr', {}, headers.map(c => h('th', { scope: 'col', class: /^(#|Size|Succeeded|Failed|In flight|Targeted|Images|Served to devices|From peers|From upstream)$/.test(c) ? 'num' : null }, c)))),
            h('tbody', {}, rows)));
        }
        const td = (v, cls) => h('td', { class: cls || null }, v);
        // Replaces an element's content; nulls are skipped, strings become text nodes.
        const fill = (el, ...kids) => el.replaceChildren(...kids.flat(Infinity).filter(k => k !== null && k !== undefined && k !== false)
          .map(k => k instanceof Node ? k : document.createTextNode(String(k))));

        async function api(path, options) {
          const o = Object.assign({ cache: 'no-store' }, options || {});
          o.headers = Object.assign({}, o.headers || {}, await auth(o.method || 'GET', '/api/v1/' + path, o.body));
          const res = await fetch('/api/v1/' + path, o);
          if (!res.ok) throw new Error((await res.text()).trim() || ('HTTP ' + res.status));
          return res;
        }

        // --- connection -----------------------------------------------------------------
        function setConn(state) {
          const el = document.getElementById('conn');
          const name = S.snap ? S.snap.gateway : 'the gateway';
          if (state === 'live') {
            el.textContent = S.conn === 'lost' ? 'connected again to ' + name : 'live: ' + name;
            el.className = 'live';
            if (S.conn === 'lost') setTimeout(() => { if (S.conn === 'live') el.textContent = 'live: ' + name; }, 4000);
          } else if (state === 'lost') {
            el.textContent = 'connection to ' + name + ' lost: retrying';
            el.className = 'lost';
          } else { el.textContent = 'not connected'; el.className = ''; }
          S.conn = state;
        }

        async function stream() {
          const mine = S.session;
          while (S.signedIn && S.session === mine) {
            const abort = new AbortController();
            let heard = Date.now();
            const watchdog = setInterval(() => { if (Date.now() - heard > 12000) abort.abort(); }, 2000);
            let opened = false;
            try {
              const res = await fetch('/api/v1/events', { headers: await auth('GET', '/api/v1/events', ''), cache: 'no-store', signal: abort.signal });
              if (res.status === 401 || res.status === 403) { signOut('The gateway refused the credential: ' + (await res.text()).trim()); return; }
              if (!res.ok) throw new Error('HTTP ' + res.status);
              opened = true;
              setConn('live');
              const reader = res.body.getReader();
              const decoder = new TextDecoder();
              let buffer = '';
              for (;;) {
                const { value, done } = await reader.read();
                if (done) break;
                heard = Date.now();
                buffer += decoder.decode(value, { stream: true });
                let cut;
                while ((cut = buffer.indexOf('\n\n')) >= 0) {
                  const block = buffer.slice(0, cut);
                  buffer = buffer.slice(cut + 2);
                  const data = block.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n');
                  if (block.startsWith('event: snapshot') && data) {
                    const firstSnapshot = !S.snap;
                    S.snap = JSON.parse(data);
                    if (firstSnapshot && S.conn === 'live') document.getElementById('conn').textContent = 'live: ' + S.snap.gateway;
                    render(false);
                  }
                }
              }
            } catch (e) { opened = false; }
            clearInterval(watchdog);
            if (!opened) { if (S.session === mine) setConn('lost'); await sleep(2000); }
          }
        }

        // --- sign-in --------------------------------------------------------------------
        // token: a bearer token; null: the loaded admin key signs every request instead.
        async function signIn(token) {
          S.token = token;
          try {
            const who = await (await api('whoami')).json();
            S.role = who.role;
            if (token) sessionStorage.setItem('otamesh.token', token);
          } catch (e) { S.token = null; if (!token) { KEY.key = null; KEY.keyID = null; } throw e; }
          S.signedIn = true;
          S.session += 1;
          showKey();
          document.getElementById('signout').hidden = false;
          if (S.role === 'admin' && token) fill(document.getElementById('keyslot'), keyPicker());
          stream();
          render(true);
        }
        function signOut(why) {
          S.token = null; S.signedIn = false; S.session += 1; S.role = null; S.snap = null;
          sessionStorage.removeItem('otamesh.token');
          document.getElementById('who').textContent = '';
          document.getElementById('keyslot').replaceChildren();
          KEY.key = null; KEY.keyID = null; KEY.name = null;
          document.getElementById('signout').hidden = true;
          setConn('idle');
          showSignIn(why);
        }
        function showSignIn(why) {
          const main = document.getElementById('main');
          const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' });
          const error = h('p', { id: 'signin-error', class: 'bad', role: 'alert' }, why || '');
          const form = h('form', { class: 'signin', on: { submit: async ev => {
            ev.preventDefault();
            error.textContent = '';
            try { await signIn(input.value.trim()); } catch (e) { error.textContent = 'Sign-in refused: ' + e.message; }
          } } },
            h('label', { for: 'token' }, 'Admin API token'), input,
            h('p', { id: 'token-help', class: 'muted' }, 'The gateway\'s admin token (DATA/keys/admin.token) lets you act; its read-only token (DATA/keys/read.token) shows everything and changes nothing. The token stays in this tab.'),
            h('button', { type: 'submit' }, 'Sign in'), error);
          const secure = window.isSecureContext && window.crypto && crypto.subtle;
          const keyFile = h('input', { id: 'signin-key', type: 'file', accept: '.pem', 'aria-describedby': 'key-help', disabled: !secure });
          keyFile.addEventListener('change', async () => {
            error.textContent = '';
            try { await loadKey(keyFile.files[0]); await signIn(null); } catch (e) { error.textContent = 'Sign-in refused: ' + e.message; }
            keyFile.value = '';
          });
          const byKey = h('div', { class: 'signin' }, h('label', { for: 'signin-key' }, 'Or sign in with your admin key file'), keyFile,
            h('p', { id: 'key-help', class: 'muted' }, 'The PEM otamesh keys generate wrote (Ed25519 or ECDSA P-256). The page signs each request with it, as otamesh … --key does, so every gateway of the site accepts you; the key stays in this page\'s memory (load it again after a reload).'),
            secure ? null : h('p', { id: 'insecure', class: 'bad' }, 'Key sign-in is off: ' + INSECURE + '.'));
          main.replaceChildren(h('h1', {}, 'Sign in'), form, byKey);
          input.focus();
        }

        // --- routing --------------------------------------------------------------------
        function route() {
          const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
          return { name: parts[0] || 'site', arg: parts[1] || null };
        }
        function render(full) {
          if (!S.signedIn) return;
          const r = route();
          const key = r.name + '/' + (r.arg || '');
          const main = document.getElementById('main');
          if (full || key !== S.route) {
            if (key !== S.route) { S.detail.commandNote = ''; S.detail.haltNote = ''; }
            S.route = key;
            main.replaceChildren();
            for (const a of document.querySelectorAll('nav a')) a.toggleAttribute('aria-current', a.getAttribute('href') === '#/' + r.name || a.getAttribute('href') === '#/' + r.name + 's');
            for (const a of document.querySelectorAll('nav a[aria-current]')) a.setAttribute('aria-current', 'page');
          }
          if (!S.snap) { if (!main.firstChild) main.append(h('p', { class: 'muted' }, 'Waiting for the gateway…')); return; }
          const view = VIEWS[r.name] || VIEWS.site;
          view(main, r.arg, !main.querySelector('[data-view]'));
        }
        function live(main, first, title, build) {
          if (first) { main.replaceChildren(h('h1', { 'data-view': true }, title)); if (build) build(main); main.append(h('div', { id: 'live' })); }
          return document.getElementById('live');
        }
        const VIEWS = {};
        function renderDetail() { S.detail.rendering = true; try { render(false); } finally { S.detail.rendering = false; } }
        // Loads a page's extra data at most every 1.5 s, and once more after the last change
        // (a trailing load), so a page never keeps data older than the snapshot it shows.
        function refreshDetail(key, load) {
          if (S.detail.rendering) return;  // this render shows what a load just brought
          const now = Date.now(), last = S.detail[key + 'At'] || 0;
          if (now - last > 1500) { S.detail[key + 'At'] = now; load(); return; }
          if (S.detail[key + 'Timer']) return;
          S.detail[key + 'Timer'] = setTimeout(() => { S.detail[key + 'Timer'] = null; S.detail[key + 'At'] = Date.now(); load(); }, 1500 - (now - last));
        }

        addEventListener('hashchange', () => render(true));
        addEventListener('DOMContentLoaded', () => {
          document.getElementById('signout').addEventListener('click', () => signOut(''));
          const saved = sessionStorage.getItem('otamesh.token');
          if (saved) signIn(saved).catch(e => signOut('Sign-in refused: ' + e.message)); else showSignIn('');
        });

        """#
}
