extension DashboardScript {
    /// Part 5: the form that starts a rollout — a live preview of what it selects, then the plan
    /// signed with the loaded key, as `otamesh rollout start` writes it.
    static let start = #"""
        function planFrom(form) {
          const v = name => form.querySelector('[name="' + name + '"]').value.trim();
          const image = S.snap.images.find(i => i.path === v('target'));
          if (!image) throw new Error('choose a target this gateway trusts');
          const target = { path: image.path, sha256: image.sha256, length: image.length };
          if (image.version) target.version = image.version;
          if (image.hardware) target.hardware = image.hardware;
          const whole = (name, low, high) => {
            const n = Number(v(name));
            if (!Number.isInteger(n) || n < low || n > high) throw new Error(name + ': a whole number from ' + low + ' to ' + high);
            return n;
          };
          const select = v('select');
          if (!select) throw new Error('select: key=value terms (hardware, variant, tag, gateway), or all');
          const stages = v('stages').split(',').map(s => Number(s.trim()));
          if (!stages.length || stages.some(s => !Number.isInteger(s) || s < 1 || s > 100)) throw new Error('stages: percentages 1–100, comma-separated');
          const plan = { id: form.dataset.id, target, select: select.toLowerCase() === 'all' ? '' : select, stages,
            soak: whole('soak', 0, 31536000), success: whole('success', 1, 100), minFinished: whole('minFinished', 0, 1000000),
            concurrency: whole('concurrency', 1, 1000), deviceTimeout: whole('deviceTimeout', 1, 31536000) };
          const failures = v('maxFailures');
          if (/^\d+%$/.test(failures)) plan.maxFailurePercent = Number(failures.slice(0, -1));
          else if (/^\d+$/.test(failures)) plan.maxFailures = Number(failures);
          else throw new Error('max failures: a share like 5% or a count like 3');
          if (v('window')) plan.window = v('window');
          if (form.querySelector('[name="dynamic"]').checked) plan.dynamic = true;
          if (form.querySelector('[name="configuration"]').checked) plan.configuration = true;
          return plan;
        }
        function startForm() {
          if (S.role !== 'admin' || !S.snap.site) return null;
          const field = (label, name, attrs) => h('label', {}, label, ' ', h('input', Object.assign({ name }, attrs)));
          const id = 'r-' + hex(crypto.getRandomValues(new Uint8Array(6)));
          const preview = h('div', { id: 'preview', role: 'status' });
          const form = h('form', { id: 'start', 'data-id': id, class: 'card' },
            h('h2', {}, 'Start a rollout'),
            h('div', { class: 'filters' },
              h('label', {}, 'Target ', h('select', { name: 'target' }, S.snap.images.map(i => h('option', { value: i.path }, i.path + (i.version ? ' (' + i.version + ')' : ''))))),
              field('Devices', 'select', { value: 'all', size: 24, placeholder: 'hardware=esp32,tag=floor2' }),
              field('Stages %', 'stages', { value: '1,10,50,100', size: 12 }),
              field('Soak s', 'soak', { value: '600', size: 6, inputmode: 'numeric' }),
              field('Success %', 'success', { value: '95', size: 4, inputmode: 'numeric' }),
              field('Max failures', 'maxFailures', { value: '5%', size: 5 }),
              field('Min finished', 'minFinished', { value: '5', size: 4, inputmode: 'numeric' }),
              field('Concurrency', 'concurrency', { value: '4', size: 4, inputmode: 'numeric' }),
              field('Device timeout s', 'deviceTimeout', { value: '1800', size: 6, inputmode: 'numeric' }),
              field('Window UTC', 'window', { size: 11, placeholder: '22:00-04:00' }),
              h('label', {}, h('input', { name: 'dynamic', type: 'checkbox' }), ' devices seen later join'),
              h('label', {}, h('input', { name: 'configuration', type: 'checkbox' }), ' with each device\'s configuration (an app version)')),
            preview,
            h('div', { class: 'filters' }, h('button', { type: 'submit' }, 'Sign and start ' + id)));
          let timer = null;
          const refresh = () => {
            clearTimeout(timer);
            timer = setTimeout(async () => {
              let plan;
              try { plan = planFrom(form); } catch (e) { preview.textContent = e.message; return; }
              try {
                const p = await post('rollouts/preview', canonical(plan));
                fill(preview, h('p', {}, p.matching + ' of ' + p.devices + ' known devices match; per stage: ' + p.perStage.join(' → ')
                  + (p.alreadyCurrent ? ' (' + p.alreadyCurrent + ' run the target already)' : '')), (p.warnings || []).map(w => h('p', { class: 'warn' }, w)));
              } catch (e) { preview.textContent = 'preview: ' + e.message; }
            }, 250);
          };
          form.addEventListener('input', refresh);
          form.addEventListener('submit', async ev => {
            ev.preventDefault();
            try {
              const plan = planFrom(form);
              plan.author = KEY.keyID;
              const signed = command(1, 'rollout.plan', plan);
              await post('rollouts', envelopeText(signed, [await sign(signed)]));
              location.hash = '#/rollout/' + encodeURIComponent(plan.id);
            } catch (e) { preview.textContent = 'not started: ' + e.message; }
          });
          refresh();
          return form;
        }

        """#
}
