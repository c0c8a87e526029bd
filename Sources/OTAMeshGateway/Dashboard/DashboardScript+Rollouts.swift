extension DashboardScript {
    /// Part 3: the rollouts list and one rollout's page.
    static let rollouts = #"""
        const stageText = r => r.plan ? 'stage ' + (r.stage + 1) + '/' + r.plan.stages.length + ' (' + r.plan.stages[r.stage] + ' %)' : '';
        const sum = (r, k) => r.stages.length ? r.stages[r.stages.length - 1][k] : 0;
        const modeClass = m => m === 'running' ? 'ok' : m === 'halted' || m === 'aborted' ? 'bad' : m.startsWith('completed') ? 'ok' : 'warn';

        VIEWS.rollouts = (main, _, first) => {
          const box = live(main, first, 'Rollouts', m => {
            if (S.role !== 'admin' || !S.snap.site) return;
            const slot = h('div', { id: 'start-slot' });
            m.append(slot);
            const show = () => fill(slot, KEY.key ? startForm() : h('p', { class: 'muted' }, 'Load your admin key (top of the page) to start a rollout here.'));
            show();
            S.onKey = show;
          });
          const rows = S.snap.rollouts.slice().sort((a, b) => (b.planIssued || 0) - (a.planIssued || 0));
          fill(box, rows.length === 0 ? h('p', {}, 'No rollout yet' + (S.role === 'admin' ? ': start one above, or with otamesh rollout start … --key FILE.' : '.')) :
            table(['Rollout', 'Mode', 'Target', 'Stage', 'Succeeded', 'Failed', 'In flight'], rows.map(r => h('tr', {},
              td(link(['rollout', r.id], r.id), 'mono'), td(h('span', { class: 'pill ' + modeClass(r.mode) }, r.mode)),
              td(r.plan ? r.plan.target.path : r.proposed ? r.proposed.target.path + ' (proposed)' : '', 'mono'), td(stageText(r)),
              td(sum(r, 'succeeded'), 'num'), td(sum(r, 'failed'), 'num'), td(sum(r, 'inFlight'), 'num'))), 'Rollouts'));
        };

        // One stage's bar: succeeded, failed and in flight against the targeted devices, the success
        // share marked. Widths are set through the CSSOM (the style policy allows it, unlike inline
        // style attributes).
        function bar(stage, success) {
          const el = h('div', { class: 'bar', role: 'img', 'aria-label': stage.succeeded + ' succeeded, ' + stage.failed + ' failed, ' + stage.inFlight + ' in flight of ' + stage.targeted },
            h('span', { class: 's' }), h('span', { class: 'f' }), h('span', { class: 'i' }), h('span', { class: 'mark' }));
          const t = Math.max(stage.targeted, stage.succeeded + stage.failed + stage.inFlight, 1);
          const [s, f, i, m] = el.children;
          s.style.width = (100 * stage.succeeded / t) + '%';
          f.style.width = (100 * stage.failed / t) + '%';
          i.style.width = (100 * stage.inFlight / t) + '%';
          m.style.left = success + '%';
          return el;
        }

        function threshold(r) {
          const p = r.plan; if (!p) return null;
          const finished = r.finished, failed = r.failed;
          const parts = [];
          if (p.maxFailures !== null && p.maxFailures !== undefined) parts.push(failed + ' failed of at most ' + p.maxFailures);
          if (p.maxFailurePercent !== null && p.maxFailurePercent !== undefined)
            parts.push((finished ? Math.round(1000 * failed / finished) / 10 : 0) + ' % of finished failed (halts above ' + p.maxFailurePercent + ' %)');
          parts.push(finished + ' finished (the threshold applies from ' + p.minFinished + ')');
          const limit = p.maxFailures !== null && p.maxFailures !== undefined ? p.maxFailures : Math.max(1, Math.ceil(finished * (p.maxFailurePercent || 0) / 100));
          return h('div', {}, h('meter', { min: 0, max: Math.max(limit, 1), value: Math.min(failed, Math.max(limit, 1)), low: Math.max(limit, 1) * 0.5, high: Math.max(limit, 1) * 0.8, optimum: 0, 'aria-label': 'failures against the threshold' }),
            ' ', parts.join(' · '));
        }

        function haltForm(r) {
          if (S.role !== 'admin' || !r.plan || r.mode === 'halted' || r.mode === 'aborted' || r.mode.startsWith('completed')) return null;
          const reason = h('input', { id: 'halt-reason', type: 'text', placeholder: 'why', 'aria-label': 'Halt reason', maxlength: 200 });
          const note = h('span', { id: 'halt-note', role: 'status' }, S.detail.haltNote || '');
          const say = text => { S.detail.haltNote = text; const el = document.getElementById('halt-note'); if (el) el.textContent = text; };
          return h('form', { class: 'filters', on: { submit: async ev => {
            ev.preventDefault();
            say('halting…');
            try {
              await api('rollouts/' + encodeURIComponent(r.id) + '/halt', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ reason: reason.value || 'halted from the dashboard' }) });
              say('halted: every gateway stops starting devices once the halt reaches it');
            } catch (e) { say('not halted: ' + e.message); }
          } } }, reason, h('button', { type: 'submit', class: 'danger' }, 'Halt rollout'), note);
        }

        VIEWS.rollout = (main, id, first) => {
          const box = live(main, first, 'Rollout ' + id, m => m.append(h('div', { id: 'actions' })));
          const cached = S.detail.rollout && S.detail.rollout.id === id ? S.detail.rollout : null;
          const r = cached || S.snap.rollouts.find(x => x.id === id);
          if (!r) { fill(box, h('p', {}, 'Rollout ' + id + ' is not known on this gateway.')); return; }
          // The actions re-render only when what they offer changes, so a halt reason being typed
          // (and the focus) survives the live updates.
          const actions = document.getElementById('actions');
          const offer = [r.mode, r.stage, r.lastSequence, (r.pending || []).map(p => p.sequence).join(','), S.role, KEY.keyID || ''].join('|');
          if (actions && actions.dataset.offer !== offer) { actions.dataset.offer = offer; fill(actions, haltForm(r), controls(r)); }
          const plan = r.plan || r.proposed;
          const now = Date.now();
          const soakLeft = r.plan && r.stageSince ? Math.max(0, Math.round((r.stageSince + r.plan.soak * 1000 - now) / 1000)) : null;
          const signers = s => (s || []).map(x => x.name || x.keyID.slice(0, 12)).join(', ');
          fill(box, 
            h('p', {}, h('span', { class: 'pill ' + modeClass(r.mode) }, r.mode), ' ', stageText(r),
              soakLeft !== null && r.mode === 'running' && r.stage < r.plan.stages.length - 1 ? ' · soak: next stage in ' + soakLeft + ' s at the earliest' : ''),
            r.halt ? h('div', { class: 'banner bad', role: 'alert' }, 'Halted by ' + r.halt.gateway + ' at ' + when(r.halt.at / 1000) + ': ' + r.halt.reason,
              h('br'), 'Next: otamesh rollout retry-failed ' + r.id + ' (or resume) with ' + r.threshold + ' admin signatures.') : null,
            plan ? h('dl', {}, h('dt', {}, 'Target'), h('dd', { class: 'mono' }, plan.target.path + (plan.target.version ? ' (' + plan.target.version + ')' : '')),
              h('dt', {}, 'Devices'), h('dd', {}, plan.select || 'every device'), h('dt', {}, 'Stages'), h('dd', {}, plan.stages.join(' → ') + ' % · soak ' + plan.soak + ' s · success ' + plan.success + ' %'),
              h('dt', {}, 'Concurrency'), h('dd', {}, plan.concurrency + ' per gateway · device timeout ' + plan.deviceTimeout + ' s' + (plan.window ? ' · window ' + plan.window + ' UTC' : '')),
              plan.configuration ? [h('dt', {}, 'Configuration'), h('dd', {}, 'with each device\'s configuration: success once it runs the version and reports its configuration')] : null,
              h('dt', {}, 'Approvals'), h('dd', {}, r.approvals + ' of ' + r.threshold + (r.planSigners && r.planSigners.length ? ': ' + signers(r.planSigners) : ''))) : null,
            r.planProblem ? h('p', { class: 'warn' }, r.planProblem) : null,
            r.superseded ? h('div', { class: 'banner warn' }, r.superseded.devices + ' device(s) it selects on ' + S.snap.gateway + ' are governed by the newer '
              + r.superseded.by.join(', ') + ': this rollout starts none of them, so it may stay running. Abort it if it is no longer wanted.') : null,

            h('h2', {}, 'Stages'),
            table(['Stage', 'Progress', 'Targeted', 'Succeeded', 'Failed', 'In flight'], r.stages.map((s, i) => h('tr', { 'aria-current': i === r.stage ? 'step' : null },
              td((i + 1) + ' (' + s.percent + ' %)'), td(bar(s, plan ? plan.success : 90)), td(s.targeted, 'num'), td(s.succeeded, 'num'), td(s.failed, 'num'), td(s.inFlight, 'num'))), 'Stages'),
            h('h2', {}, 'Failure threshold'), threshold(r),
            r.pending && r.pending.length ? [h('h2', {}, 'Pending commands'), table(['#', 'Command', 'Signed by', 'Why pending'], r.pending.map(p => h('tr', {},
              td(p.sequence, 'num'), td(p.kind + (p.stage !== null && p.stage !== undefined ? ' to stage ' + (p.stage + 1) : '')), td((p.signers || []).map(k => (r.adminNames || {})[k] || k.slice(0, 12)).join(', ')), td(p.problem))), 'Pending'),
              h('p', { class: 'muted' }, 'Approve with: otamesh rollout approve ' + r.id + ' --key FILE')] : null,
            r.controls && r.controls.length ? [h('h2', {}, 'Commands'), table(['#', 'Command', 'Issued', 'Signed by'], r.controls.map(c => h('tr', {},
              td(c.sequence, 'num'), td(c.kind + (c.stage !== null && c.stage !== undefined ? ' to stage ' + (c.stage + 1) : '')), td(when(c.issued)), td(signers(c.signers)))), 'Commands')] : null,
            h('h2', {}, 'Gateways'),
            table(['Gateway', 'Targeted', 'Succeeded', 'Failed', 'In flight'], Object.keys(r.gateways).sort().map(g => h('tr', {}, td(g), td(r.gateways[g].targeted, 'num'),
              td(r.gateways[g].succeeded, 'num'), td(r.gateways[g].failed, 'num'), td(r.gateways[g].inFlight, 'num'))), 'Gateways'),
            h('h2', {}, 'Devices'),
            h('div', { class: 'filters' },
              h('button', { type: 'button', on: { click: () => download('reports/rollouts/' + encodeURIComponent(r.id) + '?format=csv', 'rollout-' + r.id + '.csv') } }, 'Rollout report (CSV)'),
              h('button', { type: 'button', on: { click: () => download('reports/rollouts/' + encodeURIComponent(r.id) + '?format=json', 'rollout-' + r.id + '.json') } }, 'Rollout report (JSON)')),
            r.outcomes ? table(['Device', 'Gateway', 'Phase', 'Started', 'Last change', 'Detail'], r.outcomes.map(o => h('tr', {}, td(link(['device', o.device], o.device), 'mono'), td(o.gateway),
              td(o.phase, o.phase === 'failed' ? 'bad' : o.phase === 'succeeded' ? 'ok' : null), td(when(o.started / 1000)), td(when(o.updated / 1000)), td(o.detail))), 'Device attempts')
              : h('p', { class: 'muted' }, 'Loading…'));
          refreshDetail('rollout', () => {
            api('rollouts/' + encodeURIComponent(id) + '?outcomes=1').then(x => x.json()).then(j => {
              S.detail.rollout = j;
              if (route().name === 'rollout' && route().arg === id) renderDetail();
            }).catch(() => {});
          });
        };

        """#
}
