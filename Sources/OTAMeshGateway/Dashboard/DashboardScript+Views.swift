extension DashboardScript {
    /// Part 2: the site, devices, a device's page and images.
    static let views = #"""
        const inDays = s => { const d = Math.round(s / 8640) / 10; return d === 1 ? '1 day' : d + ' days'; };
        VIEWS.site = (main, _, first) => {
          const s = S.snap;
          const box = live(main, first, 'Site');
          const site = s.site;
          const mesh = s.mesh;
          const members = mesh ? [{ name: mesh.node, status: 'alive (this gateway)', address: mesh.address, version: mesh.version, metadataVersion: mesh.metadataVersion, images: mesh.images, keys: mesh.keys, traffic: mesh.traffic }].concat(mesh.members) : [];
          const moved = (m, k) => m.traffic ? bytes(m.traffic[k]) : '';
          const alive = members.filter(m => m.status.startsWith('alive')).length;
          const warn = [];
          const now = Date.now() / 1000;
          for (const m of s.metadata) {
            if (m.role === 'root') continue;
            if (m.expires < now) warn.push(h('div', { class: 'banner bad', role: 'alert' }, m.role + '.json expired ' + ago(m.expires) + ': devices are served nothing new until fresh metadata arrives (import a bundle).'));
            else if (m.expires - now < 7 * 86400) warn.push(h('div', { class: 'banner warn' }, m.role + '.json expires ' + when(m.expires) + ' (in ' + inDays(m.expires - now) + '): bring a fresh bundle to this offline site before then.'));
          }
          fill(box, 
            ...warn,
            h('div', { class: 'grid' },
              h('div', { class: 'card' }, 'Site', h('b', {}, site ? site.site : 'no site trust')),
              h('div', { class: 'card' }, 'Gateways alive', h('b', {}, mesh ? alive + ' of ' + members.length : 'gossip off')),
              h('div', { class: 'card' }, 'Devices', h('b', {}, s.devices.length)),
              h('div', { class: 'card' }, 'Rollouts running', h('b', {}, s.rollouts.filter(r => r.mode === 'running').length))),
            site ? h('p', { class: 'muted' }, 'Commands need ' + site.threshold + ' of ' + site.admins.length + ' site admin signatures.') : null,
            h('h2', {}, 'Gateways'),
            mesh ? table(['Gateway', 'Status', 'Address', 'Version', 'Metadata', 'Images', 'Served to devices', 'From peers', 'From upstream', 'Site keys'], members.map(m => h('tr', {},
              td(m.name), td(h('span', { class: m.status.startsWith('alive') ? 'ok' : m.status === 'suspect' ? 'warn' : 'bad' }, m.status)),
              td(m.address, 'mono'), td(m.version || ''), td(m.metadataVersion ? 'timestamp v' + m.metadataVersion : ''),
              td((m.images || []).length, 'num'), td(moved(m, 'servedToDevices'), 'num'), td(moved(m, 'fromPeers'), 'num'), td(moved(m, 'fromUpstream'), 'num'),
              td((m.keys || []).map(k => k.slice(0, 12)).join(' '), 'mono'))), 'Gateways')
              : h('p', {}, 'Gossip is off on this gateway: it shows only itself.'),
            mesh && mesh.rotation ? h('p', {}, 'Site key rotation: ', h('code', {}, mesh.rotation)) : null,
            h('h2', {}, 'Trusted release metadata'),
            table(['Role', 'Version', 'Expires'], s.metadata.map(m => h('tr', {}, td(m.role), td('v' + m.version),
              td(when(m.expires), m.expires < now ? 'bad' : m.expires - now < 7 * 86400 ? 'warn' : null))), 'Metadata'));
        };

        function deviceMatches(d) {
          const f = S.filters;
          if (f.family && d.family !== f.family) return false;
          if (f.gateway && d.gateway !== f.gateway) return false;
          if (!f.q) return true;
          const q = f.q.toLowerCase();
          return [d.id, d.hardware, d.variant, d.version, d.tags, d.lastAnswer, d.address, d.segment].some(v => v && String(v).toLowerCase().includes(q));
        }
        function download(path, name) {
          api(path).then(r => r.blob()).then(b => {
            const a = h('a', { href: URL.createObjectURL(b), download: name });
            document.body.append(a); a.click(); a.remove();
          }).catch(e => alert(e.message));
        }
        VIEWS.devices = (main, _, first) => {
          const s = S.snap;
          const box = live(main, first, 'Devices', m => {
            const families = [...new Set(s.devices.map(d => d.family))].sort();
            const gateways = [...new Set(s.devices.map(d => d.gateway))].sort();
            const q = h('input', { id: 'q', type: 'search', placeholder: 'id, version, tag, answer…', 'aria-label': 'Search devices', value: S.filters.q });
            q.addEventListener('input', () => { S.filters.q = q.value; render(false); });
            const fam = h('select', { 'aria-label': 'Family' }, h('option', { value: '' }, 'every family'), families.map(f => h('option', { value: f, selected: f === S.filters.family }, f)));
            fam.addEventListener('change', () => { S.filters.family = fam.value; render(false); });
            const gw = h('select', { 'aria-label': 'Gateway' }, h('option', { value: '' }, 'every gateway'), gateways.map(g => h('option', { value: g, selected: g === S.filters.gateway }, g)));
            gw.addEventListener('change', () => { S.filters.gateway = gw.value; render(false); });
            m.append(h('div', { class: 'filters' }, q, fam, gw,
              h('button', { type: 'button', on: { click: () => download('reports/fleet?format=csv', 'fleet.csv') } }, 'Fleet report (CSV)'),
              h('button', { type: 'button', on: { click: () => download('reports/fleet?format=json', 'fleet.json') } }, 'Fleet report (JSON)')));
          });
          const shown = s.devices.filter(deviceMatches);
          fill(box, h('p', { class: 'muted' }, shown.length + ' of ' + s.devices.length + ' devices'),
            table(['Device', 'Family', 'Hardware', 'Variant', 'Version', 'Gateway', 'Address', 'Segment', 'Last seen', 'Last answer', 'Tags', 'Kind'],
              shown.map(d => h('tr', {}, td(link(['device', d.id], d.id), 'mono'), td(d.family), td(d.hardware || ''), td(d.variant || ''),
                td(d.version || ''), td(d.gateway), td(d.address || '', 'mono'), td(d.segment || ''), td(ago(d.lastSeen)), td(d.lastAnswer || ''),
                td(d.tags || ''), td(d.push ? (d.confirmable === false ? 'push, unconfirmable' : 'push') : 'pull'))), 'Devices'));
        };

        VIEWS.device = (main, id, first) => {
          const d = S.snap.devices.find(x => x.id === id);
          const box = live(main, first, 'Device ' + id);
          if (!d) { fill(box, h('p', {}, 'No device ' + id + ' in the site\'s records.')); return; }
          const fields = [['Family', d.family + (d.push ? ' (push)' : ' (pull)')], ['Hardware', d.hardware], ['Variant', d.variant], ['Version', d.version],
            ['Gateway', d.gateway], ['Address', d.address], ['Segment', d.segment], ['Last seen', when(d.lastSeen) + ' (' + ago(d.lastSeen) + ')'],
            ['Last answer', d.lastAnswer], ['Tags', d.tags], ['Confirmable', d.confirmable === undefined || d.confirmable === null ? null : d.confirmable ? 'yes' : 'no']];
          const history = S.detail.attempts && S.detail.attempts.device === id ? S.detail.attempts.rows : null;
          fill(box, h('dl', {}, fields.filter(f => f[1] !== null && f[1] !== undefined && f[1] !== '').map(f => [h('dt', {}, f[0]), h('dd', {}, f[1])])),
            h('h2', {}, 'Attempts'),
            history === null ? h('p', { class: 'muted' }, 'Loading…') : history.length === 0 ? h('p', {}, 'No rollout has started this device.')
              : table(['Rollout', 'Gateway', 'Phase', 'Started', 'Last change', 'Detail'], history.map(o => h('tr', {}, td(link(['rollout', o.rollout], o.rollout)),
                td(o.gateway), td(o.phase, o.phase === 'failed' ? 'bad' : o.phase === 'succeeded' ? 'ok' : null), td(when(o.started / 1000)), td(when(o.updated / 1000)), td(o.detail))), 'Attempts'));
          refreshDetail('attempts', () => {
            api('rollouts?outcomes=1').then(r => r.json()).then(j => {
              const rows = [];
              for (const r of j.rollouts) for (const o of r.outcomes || []) if (o.device === id) rows.push(Object.assign({ rollout: r.id }, o));
              rows.sort((a, b) => b.started - a.started);
              S.detail.attempts = { device: id, rows };
              if (route().name === 'device' && route().arg === id) renderDetail();
            }).catch(() => {});
          });
        };

        VIEWS.images = (main, _, first) => {
          const s = S.snap;
          const box = live(main, first, 'Images');
          fill(box, s.images.length === 0 ? h('p', {}, 'This gateway trusts no target yet: import a bundle (otamesh import) or let it sync.')
            : table(['Target', 'Version', 'Hardware', 'Format', 'Size', 'SHA-256', 'Held by'], s.images.map(i => h('tr', {},
              td(i.path, 'mono'), td(i.version || ''), td(i.hardware || ''), td(i.format || ''), td(bytes(i.length), 'num'), td(i.sha256.slice(0, 16) + '…', 'mono'),
              td(i.holders.length ? i.holders.join(', ') : h('span', { class: 'warn' }, 'no gateway yet')))), 'Images'));
        };

        """#
}
