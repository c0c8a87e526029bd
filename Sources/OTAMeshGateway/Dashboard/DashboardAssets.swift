/// The dashboard's page, style and script, inside the binary: no CDN, no web font, nothing
/// fetched from anywhere but this gateway (docs/dashboard.md). Written by hand, no build step.
enum DashboardAssets {
    static let script = DashboardScript.core + DashboardScript.views + DashboardScript.signing + DashboardScript.start + DashboardScript.rollouts

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>otamesh site dashboard</title>
        <link rel="stylesheet" href="/ui/app.css">
        <script src="/ui/app.js" defer></script>
        </head>
        <body>
        <header>
          <a class="brand" href="#/site">otamesh</a>
          <nav aria-label="Sections">
            <a href="#/site">Site</a>
            <a href="#/devices">Devices</a>
            <a href="#/images">Images</a>
            <a href="#/rollouts">Rollouts</a>
          </nav>
          <span id="who"></span>
          <span id="keyslot"></span>
          <span id="conn" role="status" aria-live="polite">not connected</span>
          <button id="signout" type="button" hidden>Sign out</button>
        </header>
        <main id="main" tabindex="-1">
          <noscript>The dashboard needs JavaScript.</noscript>
        </main>
        </body>
        </html>

        """#

    static let css = #"""
        :root { --fg: #1b1f24; --muted: #4a5563; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa;
          --ok: #116329; --warn: #7d4e00; --bad: #a40e26; --accent: #0a50b5; --inflight: #4b5fc0; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
        .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
        nav { display: flex; flex-wrap: wrap; gap: .25rem .9rem; }
        nav a, a { color: var(--accent); }
        nav a[aria-current="page"] { font-weight: 700; color: var(--fg); }
        #who { color: var(--muted); margin-left: auto; }
        #conn { padding: .1rem .5rem; border-radius: .8rem; border: 1px solid var(--line); }
        #conn.live { color: var(--ok); border-color: var(--ok); }
        #conn.lost { color: #fff; background: var(--bad); border-color: var(--bad); font-weight: 700; }
        main { padding: 1rem; max-width: 80rem; }
        main:focus { outline: none; }
        h1 { font-size: 1.35rem; margin: .2rem 0 .8rem; }
        h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; font-size: .92rem; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { background: var(--panel); position: sticky; top: 0; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; overflow-wrap: anywhere; }
        .ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); } .muted { color: var(--muted); }
        .pill { display: inline-block; padding: 0 .45rem; border-radius: .7rem; border: 1px solid currentColor; font-size: .85em; }
        .banner { padding: .6rem .8rem; border-radius: .3rem; margin: .6rem 0; border: 1px solid var(--line); background: var(--panel); }
        .banner.bad { border-color: var(--bad); } .banner.warn { border-color: var(--warn); }
        .filters { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; }
        input, select, button, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #8c959f; border-radius: .3rem; background: #fff; color: var(--fg); }
        button { cursor: pointer; background: var(--panel); }
        button.danger { border-color: var(--bad); color: var(--bad); }
        :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
        .bar { display: flex; height: 1rem; background: #eaeef2; border-radius: .2rem; overflow: hidden; min-width: 8rem; position: relative; }
        .bar span { display: block; height: 100%; }
        .bar .s { background: var(--ok); } .bar .f { background: var(--bad); } .bar .i { background: var(--inflight); }
        .bar .mark { position: absolute; top: 0; bottom: 0; width: 2px; background: var(--fg); }
        .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: .6rem; }
        .card { border: 1px solid var(--line); border-radius: .4rem; padding: .6rem .8rem; }
        .card b { display: block; font-size: 1.3rem; }
        form.signin { max-width: 34rem; display: grid; gap: .6rem; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
        dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
        @media (max-width: 40rem) { main { padding: .6rem; } #who { margin-left: 0; } th, td { padding: .3rem; } }

        """#
}
