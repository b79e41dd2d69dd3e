// Headless-browser check of the page `lakeflow serve` serves at `/`.
//
//   node tests/browser/serve.mjs URL TOKEN RELATION EXPECTED_JSON DETAILS_JSON SCREENSHOT.png
//
// Opens URL in Chromium (env CHROMIUM, default /usr/bin/chromium) through playwright-core,
// enters TOKEN, waits for RELATION (schema.name) in the list with its row count, opens it and
// checks that:
// - the table shows exactly the columns and rows of EXPECTED_JSON (the API's response to the
//   same query: `columns` and `rows`, compared cell by cell as text);
// - the model's panel shows what DETAILS_JSON says: `description`, a column's description
//   (`column`, `column_description`), a test (`test`) with its last result (`status`), and
//   a parent and a child in its lineage (`parent`, `child`, as schema.name);
// then clicks the child in the lineage and checks that it opens, runs `chart_sql` (a label
// and a number per row) in the editor and checks the bar chart has a bar per row, checks
// that the page loaded nothing from another origin, and saves a screenshot.
// Exit 0: all checks passed; 1: a check failed; 2: usage or browser start-up error.
import { launchChromium, exitWith } from './harness.mjs';

const [URL_, TOKEN, RELATION, EXPECTED, DETAILS, SHOT] = process.argv.slice(2);
if (!URL_ || !TOKEN || !RELATION || !EXPECTED || !DETAILS || !SHOT) {
  console.error('usage: node tests/browser/serve.mjs URL TOKEN RELATION EXPECTED_JSON DETAILS_JSON SCREENSHOT.png');
  process.exit(2);
}
const TIMEOUT = Number(process.env.SERVE_TEST_TIMEOUT_MS || 15000);
let step = 0;
class CheckFailed extends Error {}
const ok = (msg) => console.log(`ok ${++step} - ${msg}`);
const check = (cond, msg) => { if (!cond) throw new CheckFailed(msg); };
const text = (v) => (v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v));

async function tableCells(page) {
  return page.$$eval('#result table tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
}

async function main() {
  const browser = await launchChromium();
  if (!browser) return 2;
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(TIMEOUT);
    const errors = [], foreign = [];
    const origin = new URL(URL_).origin;
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith(origin)) foreign.push(r.url()); });
    await page.goto(URL_);
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    const [schema, name] = RELATION.split('.');
    const item = page.locator(`nav li[data-relation="${RELATION}"]`);
    await item.first().waitFor();
    const { columns, rows: expected } = JSON.parse(EXPECTED);
    const label = await item.first().textContent();
    check(label === `${name}${expected.length} rows`, `the list item reads ${JSON.stringify(label)}, expected ${JSON.stringify(`${name}${expected.length} rows`)}`);
    ok(`the list shows ${RELATION} with its row count once the token is entered`);
    await item.first().click();
    await page.waitForFunction(() => /rows/.test(document.getElementById('status').textContent));
    const cells = await tableCells(page);
    check(JSON.stringify(cells[0]) === JSON.stringify(columns), `header ${JSON.stringify(cells[0])}, expected ${JSON.stringify(columns)}`);
    const want = expected.map((r) => columns.map((c) => text(r[c])));
    const got = cells.slice(1);
    check(JSON.stringify(got) === JSON.stringify(want), `rows ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    ok(`opening ${schema}.${name} shows its ${want.length} rows`);
    const d = JSON.parse(DETAILS);
    const panel = await page.$eval('#model', (m) => ({
      name: m.querySelector('#model-name').textContent,
      description: m.querySelector('#model-description').textContent,
      columns: [...m.querySelectorAll('#model-columns tr')].map((tr) => [...tr.children].map((c) => c.textContent)),
      tests: [...m.querySelectorAll('#model-tests tr[data-test]')].map((tr) => [...tr.children].map((c) => c.textContent)),
      upstream: [...m.querySelectorAll('#lineage .upstream .node')].map((n) => n.textContent),
      downstream: [...m.querySelectorAll('#lineage .downstream .node')].map((n) => n.textContent),
    }));
    check(panel.name === RELATION, `the panel is titled ${panel.name}`);
    check(panel.description === d.description, `description ${JSON.stringify(panel.description)}, expected ${JSON.stringify(d.description)}`);
    const col = panel.columns.find((r) => r[0] === d.column);
    check(col && col[2] === d.column_description, `column ${d.column} row ${JSON.stringify(col)}`);
    const test = panel.tests.find((r) => r[0] === d.test);
    check(test && test[2] === d.status, `test ${d.test} row ${JSON.stringify(test)} in ${JSON.stringify(panel.tests)}`);
    check(panel.upstream.includes(d.parent), `upstream ${JSON.stringify(panel.upstream)} lacks ${d.parent}`);
    check(panel.downstream.includes(d.child), `downstream ${JSON.stringify(panel.downstream)} lacks ${d.child}`);
    ok(`the panel shows the description, columns, test result and lineage of ${RELATION}`);
    await page.locator('#lineage .downstream .node.link', { hasText: d.child }).first().click();
    await page.waitForFunction((c) => document.getElementById('model-name').textContent === c, d.child);
    ok(`clicking ${d.child} in the lineage opens it`);
    await page.fill('#sql', `select count(*) as lf_row_count from "${schema}"."${name}"`);
    await page.click('#run');
    await page.waitForFunction(() => document.querySelector('#result th')?.textContent === 'lf_row_count');
    const counted = await tableCells(page);
    check(counted[1][0] === String(expected.length), `count shows ${counted[1][0]}, expected ${expected.length}`);
    ok('a query typed in the editor runs and shows its result');
    await page.fill('#sql', d.chart_sql);
    await page.click('#run');
    await page.waitForFunction(() => document.querySelectorAll('#chart rect').length > 0);
    const bars = await page.$$eval('#chart rect', (rs) => rs.map((r) => Number(r.getAttribute('width'))));
    const shown = await tableCells(page);
    check(bars.length === shown.length - 1, `${bars.length} bars for ${shown.length - 1} rows`);
    check(bars.every((w, i) => i === 0 || w >= bars[i - 1]), `bars not in the order of the values: ${bars}`);
    ok(`an aggregate is drawn as ${bars.length} bars`);
    check(errors.length === 0, `page errors: ${errors.join('; ')}`);
    check(foreign.length === 0, `requests to other origins: ${foreign.join(', ')}`);
    ok('no script errors, nothing loaded from elsewhere');
    await page.screenshot({ path: SHOT, fullPage: true });
    ok(`screenshot written to ${SHOT}`);
    return 0;
  } catch (e) {
    if (!(e instanceof CheckFailed)) throw e;
    console.log(`not ok ${++step} - ${e.message}`);
    await page?.screenshot({ path: SHOT, fullPage: true }).catch(() => {});
    return 1;
  } finally {
    await browser.close();
  }
}

exitWith(main);
