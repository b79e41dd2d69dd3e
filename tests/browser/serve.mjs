// Headless-browser check of the page `lakeflow serve` serves at `/`.
//
//   node tests/browser/serve.mjs URL TOKEN RELATION EXPECTED_JSON SCREENSHOT.png
//
// Opens URL in Chromium (env CHROMIUM, default /usr/bin/chromium) through playwright-core,
// enters TOKEN, waits for RELATION (schema.name) in the list with its row count, opens it and
// checks that the
// table shows exactly the columns and rows of EXPECTED_JSON (the API's response to the same
// query: `columns` and `rows`, compared cell by cell as text), then runs an aggregate in the editor and checks its one
// cell, checks that the page loaded nothing from another origin, and saves a screenshot.
// Exit 0: all checks passed; 1: a check failed; 2: usage or browser start-up error.
import { launchChromium, exitWith } from './harness.mjs';

const [URL_, TOKEN, RELATION, EXPECTED, SHOT] = process.argv.slice(2);
if (!URL_ || !TOKEN || !RELATION || !EXPECTED || !SHOT) {
  console.error('usage: node tests/browser/serve.mjs URL TOKEN RELATION EXPECTED_JSON SCREENSHOT.png');
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
    await page.fill('#sql', `select count(*) as lf_row_count from "${schema}"."${name}"`);
    await page.click('#run');
    await page.waitForFunction(() => document.querySelector('#result th')?.textContent === 'lf_row_count');
    const counted = await tableCells(page);
    check(counted[1][0] === String(expected.length), `count shows ${counted[1][0]}, expected ${expected.length}`);
    ok('a query typed in the editor runs and shows its result');
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
