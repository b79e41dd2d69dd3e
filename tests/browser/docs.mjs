// Headless-browser check of the site written by `lakeflow docs generate`.
//
//   node tests/browser/docs.mjs URL MODEL_NAME UPSTREAM_NAME SCREENSHOT.png
//
// URL is http(s)://… or file://… (a plain path is turned into a file:// URL). The script drives
// Chromium (env CHROMIUM, default /usr/bin/chromium) through playwright-core: it searches for
// MODEL_NAME, opens it, checks its title, columns and types, compiled SQL and that UPSTREAM_NAME is
// drawn upstream in the lineage graph, follows that node and comes back, filters the graph with
// `+MODEL_NAME` and checks that exactly MODEL_NAME and its ancestors remain, then saves a
// full-page screenshot. The expected values are computed here from the JSON embedded in the page,
// independently of the page's own code. Exit 0: all checks passed; 1: a check failed; 2: usage or
// browser start-up error.
import { launchChromium, exitWith } from './harness.mjs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [urlArg, MODEL, UPSTREAM, SHOT] = process.argv.slice(2);
if (!urlArg || !MODEL || !UPSTREAM || !SHOT) {
  console.error('usage: node tests/browser/docs.mjs URL MODEL_NAME UPSTREAM_NAME SCREENSHOT.png');
  process.exit(2);
}
const URL_ = /^[a-z][a-z0-9+.-]*:/i.test(urlArg) ? urlArg : pathToFileURL(path.resolve(urlArg)).href;
const TIMEOUT = Number(process.env.DOCS_TEST_TIMEOUT_MS || 15000);

let step = 0;
class CheckFailed extends Error {}
const ok = (msg) => console.log(`ok ${++step} - ${msg}`);
const check = (cond, msg) => { if (!cond) throw new CheckFailed(msg); };
const q = (s) => JSON.stringify(s);
const lc = (s) => String(s ?? '').trim().toLowerCase();

/** The lineage graph as the page's data defines it: every node but tests and operations, edges from depends_on.nodes. */
function graphFromData(data) {
  const m = data.manifest || {};
  const notGraph = new Set(['test', 'unit_test', 'operation', 'sql_operation']);
  const nodes = new Map();
  for (const key of ['nodes', 'sources', 'exposures', 'metrics', 'semantic_models', 'saved_queries']) {
    for (const [id, n] of Object.entries(m[key] || {})) {
      const type = n.resource_type || id.split('.')[0];
      if (!notGraph.has(type)) nodes.set(n.unique_id || id, n);
    }
  }
  const parents = new Map(), children = new Map([...nodes.keys()].map((id) => [id, []]));
  for (const [id, n] of nodes) {
    const ps = [...new Set(((n.depends_on || {}).nodes || []).filter((d) => nodes.has(d) && d !== id))];
    parents.set(id, ps);
    for (const p of ps) children.get(p).push(id);
  }
  const reach = (start, next) => {
    const seen = new Set([start]), todo = [start];
    while (todo.length) for (const x of next.get(todo.pop())) if (!seen.has(x)) { seen.add(x); todo.push(x); }
    return seen;
  };
  return { nodes, parents, children, ancestors: (id) => reach(id, parents), descendants: (id) => reach(id, children) };
}

async function main() {
  const browser = await launchChromium();
  if (!browser) return 2;
  let pageRef;
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    pageRef = page;
    page.setDefaultTimeout(TIMEOUT);
    const pageErrors = [], foreign = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const docUrl = URL_.split('#')[0];
    page.on('request', (r) => { const u = r.url().split('#')[0]; if (u !== docUrl && !u.startsWith('data:')) foreign.push(u); });

    await page.goto(URL_);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' }).catch(() => {
      throw new CheckFailed(`the page never finished starting (no body[data-ready]); page errors: ${pageErrors.join(' | ') || 'none'}`);
    });
    check(pageErrors.length === 0, `JavaScript errors on load: ${pageErrors.join(' | ')}`);
    ok(`page loaded without script errors: ${URL_}`);

    const raw = await page.evaluate(() => document.getElementById('lakeflow-data')?.textContent ?? null);
    check(raw !== null, 'the page has no <script id="lakeflow-data"> tag');
    let data;
    try { data = JSON.parse(raw); } catch (e) {
      throw new CheckFailed(`the data tag does not hold valid JSON (${e.message}); if it ends in markup, the generator must write every "<" in the JSON as \\u003c`);
    }
    check(data && typeof data === 'object' && data.manifest, 'the page has no embedded manifest (placeholder not replaced?)');
    const G = graphFromData(data);
    const named = (name) => [...G.nodes].filter(([, n]) => n.name === name || `${n.source_name}.${n.name}` === name).map(([id]) => id);
    const modelIds = named(MODEL).sort((a, b) => (b.startsWith('model.') ? 1 : 0) - (a.startsWith('model.') ? 1 : 0));
    check(modelIds.length, `no node named ${q(MODEL)} in the embedded manifest`);
    const modelId = modelIds[0];
    const model = G.nodes.get(modelId);
    ok(`embedded data parsed: ${G.nodes.size} graph nodes, catalog ${data.catalog ? 'present' : 'null'}, run_results ${data.run_results ? 'present' : 'null'}`);

    // 1. search and open the model
    await page.fill('#search', MODEL);
    const hit = `#search-results .search-result[data-id=${q(modelId)}]`;
    await page.waitForSelector(hit).catch(() => { throw new CheckFailed(`searching ${q(MODEL)} lists no result for ${modelId}`); });
    const shown = await page.$$eval('#search-results .search-result', (as) => as.map((a) => a.getAttribute('data-name')));
    ok(`search ${q(MODEL)} lists ${shown.length} result(s), first: ${shown.slice(0, 3).join(', ')}`);
    await page.click(hit);
    const titleIs = (name) => page.waitForFunction((n) => document.querySelector('#node-title')?.textContent.trim() === n, name)
      .catch(async () => { throw new CheckFailed(`page title should be ${q(name)} but is ${q(await page.textContent('#node-title').catch(() => null))}`); });
    await titleIs(MODEL);
    check(decodeURIComponent(await page.evaluate(() => location.hash)).includes(modelId), `the URL hash does not name ${modelId}`);
    ok(`clicking the result opens ${modelId} (title ${q(MODEL)}, hash ${await page.evaluate(() => location.hash)})`);

    // 2. columns with types
    const catCols = (((data.catalog || {}).nodes || {})[modelId] || ((data.catalog || {}).sources || {})[modelId] || {}).columns;
    const expected = catCols
      ? Object.values(catCols).map((c) => ({ name: c.name, type: c.type }))
      : Object.entries(model.columns || {}).map(([k, c]) => ({ name: c.name || k, type: c.data_type || '' }));
    const rows = await page.$$eval('#columns > tbody > tr', (trs) => trs.map((tr) => ({
      name: tr.querySelector(':scope > .col-name')?.textContent.trim(), type: tr.querySelector(':scope > .col-type')?.textContent.trim() })));
    check(expected.length, `${MODEL} has no columns in the catalog nor the manifest, nothing to check`);
    check(rows.length >= expected.length, `the columns table has ${rows.length} rows, expected at least ${expected.length}`);
    for (const c of expected) {
      const row = rows.find((r) => lc(r.name) === lc(c.name));
      check(row, `column ${q(c.name)} is missing from #columns`);
      check(lc(row.type) === lc(c.type), `column ${q(c.name)} shows type ${q(row.type)}, expected ${q(c.type)}`);
    }
    check(rows.some((r) => r.type), `no column of ${MODEL} shows a type (no catalog and no data_type in the manifest)`);
    ok(`columns: ${rows.map((r) => `${r.name} ${r.type || '?'}`).join(', ')}`);

    // 3. compiled SQL
    const sqlWanted = String(model.compiled_code || model.raw_code || '').trim();
    const sqlShown = (await page.textContent('#compiled-sql').catch(() => null) || '').trim();
    check(sqlWanted, `${MODEL} has neither compiled_code nor raw_code in the manifest`);
    check(sqlShown === sqlWanted, `#compiled-sql differs from the manifest's code:\n--- shown\n${sqlShown.slice(0, 400)}\n--- expected\n${sqlWanted.slice(0, 400)}`);
    ok(`compiled SQL shown (${sqlShown.split('\n').length} lines, ${model.compiled_code ? 'compiled_code' : 'raw_code'})`);

    // 4. lineage graph shows the upstream node
    const ancestors = G.ancestors(modelId);
    const upIds = named(UPSTREAM);
    check(upIds.length, `no node named ${q(UPSTREAM)} in the embedded manifest`);
    const upId = upIds.find((id) => ancestors.has(id) && id !== modelId);
    check(upId, `${q(UPSTREAM)} (${upIds.join(', ')}) is not upstream of ${modelId}`);
    const gSel = (id) => `#lineage svg g.node[data-id=${q(id)}]`;
    await page.waitForSelector(gSel(modelId)).catch(() => { throw new CheckFailed(`the lineage graph does not draw ${modelId}`); });
    await page.waitForSelector(gSel(upId)).catch(() => { throw new CheckFailed(`the lineage graph does not draw the upstream node ${upId}`); });
    const drawn = await page.$$eval('#lineage svg g.node', (gs) => gs.length);
    ok(`lineage graph draws ${drawn} nodes including upstream ${upId}`);

    // 5. click the upstream node, then come back with the browser's back button
    await page.click(gSel(upId));
    await titleIs(G.nodes.get(upId).name);
    check(decodeURIComponent(await page.evaluate(() => location.hash)).includes(upId), `the URL hash does not name ${upId}`);
    ok(`clicking ${UPSTREAM} in the graph opens its page`);
    await page.goBack();
    await titleIs(MODEL);
    ok(`the back button returns to ${MODEL}`);

    // 6. selector filter: +MODEL shows exactly MODEL and its ancestors
    const selector = `+${MODEL}`;
    await page.waitForSelector(gSel(modelId));
    await page.fill('#lineage-filter', selector);
    await page.press('#lineage-filter', 'Enter');
    await page.waitForSelector(`#lineage svg[data-select=${q(selector)}]`).catch(async () => {
      throw new CheckFailed(`the graph was not redrawn for ${q(selector)}: ${await page.textContent('#lineage-info').catch(() => '')}`);
    });
    const ids = new Set(await page.$$eval('#lineage svg g.node', (gs) => gs.map((g) => g.getAttribute('data-id'))));
    const extra = [...ids].filter((id) => !ancestors.has(id));
    const missing = [...ancestors].filter((id) => !ids.has(id));
    const kids = [...G.descendants(modelId)].filter((id) => id !== modelId);
    check(!kids.some((id) => ids.has(id)), `${q(selector)} still draws descendants of ${MODEL}: ${kids.filter((id) => ids.has(id)).join(', ')}`);
    check(!extra.length, `${q(selector)} draws nodes that are not ${MODEL} or its ancestors: ${extra.join(', ')}`);
    check(!missing.length, `${q(selector)} leaves out ancestors of ${MODEL}: ${missing.join(', ')}`);
    ok(`filter ${q(selector)} draws exactly ${ids.size} nodes (${MODEL} and its ancestors; ${kids.length} descendant(s) hidden)`);

    check(pageErrors.length === 0, `JavaScript errors while browsing: ${pageErrors.join(' | ')}`);
    check(foreign.length === 0, `the page loaded other resources (it must be self-contained): ${foreign.join(', ')}`);
    ok('no script errors and no request besides the page itself');

    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: SHOT, fullPage: true });
    ok(`full-page screenshot written to ${SHOT}`);
    console.log(`${step} passed, 0 failed`);
    return 0;
  } catch (e) {
    if (!(e instanceof CheckFailed)) throw e;
    console.log(`not ok ${++step} - ${e.message}`);
    await pageRef?.screenshot({ path: SHOT, fullPage: true }).then(() => console.log(`screenshot of the failure written to ${SHOT}`), () => {});
    console.error(`FAILED: ${e.message}`);
    console.log(`${step - 1} passed, 1 failed`);
    return 1;
  } finally {
    await browser.close();
  }
}

exitWith(main);
