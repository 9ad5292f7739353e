// The county dashboard in headless Chromium, against a real gridwalk-server:
//   node dashboard_flow.mjs <server-url> <text-of-the-pushed-hazard>
// A clerk signs in (a wrong password first), finds the hazard in the queue, accepts it and
// dispatches it to a department's account with a due date and a note; the department signs
// in, finds it on 我的待办 and rectifies it. With SHOT_DIR set, screenshots
// of the main pages are written there (scripts/screenshots.sh uses that for the README).
import { chromium } from 'playwright-core';

const [base, text] = process.argv.slice(2);
const shots = process.env.SHOT_DIR;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
page.setDefaultTimeout(20000);
const step = (name) => console.log(`step: ${name}`);
// The pages allow no script and no inline style: anything the policy blocks is a failure.
const blocked = [];
page.on('console', (m) => {
  if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
});
const shot = async (name) => {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });
};
let failed = false;
try {
  step('the root URL asks to sign in');
  await page.goto(base + '/');
  await page.waitForSelector('#signin');
  await shot('dash-01-login');
  step('a wrong password is refused in words');
  await page.fill('#username', 'admin');
  await page.fill('#password', 'wrong-password');
  await page.click('#signin');
  await page.waitForSelector('.flash.err');
  step('sign in');
  await page.fill('#username', 'admin');
  await page.fill('#password', 'gridwalk-demo');
  await page.click('#signin');
  await page.waitForSelector('h1:has-text("待办队列")');
  await shot('dash-02-queue');
  step('filter the queue to hazards and find the pushed one');
  await page.selectOption('select[name=domain]', 'HAZARD');
  await page.click('#filter');
  await page.waitForURL(/domain=HAZARD/);
  await page.click(`a:has-text("${text}")`);
  await page.waitForSelector('#status');
  step('accept it');
  await page.fill('#note', '已受理，安排村里设置护栏');
  await page.click('#move-CONFIRMED');
  await page.waitForSelector('.flash.ok');
  if ((await page.textContent('#status')).trim() !== '已确认') throw new Error('not confirmed');
  step('dispatching without saying to whom is refused beside the form');
  await page.click('#move-RECTIFYING');
  // The browser's own check or the server's: either way nothing moves.
  if ((await page.textContent('#status')).trim() !== '已确认') throw new Error('moved without assignee');
  step('dispatch it to the town safety office with a due date and a note');
  await page.selectOption('#assignee', 'town-safety');
  const due = new Date(Date.now() + 7 * 86400e3).toISOString().slice(0, 10);
  await page.fill('#due_date', due);
  await page.fill('#note', '请一周内设置护栏');
  await page.click('#move-RECTIFYING');
  await page.waitForSelector('.flash.ok');
  if ((await page.textContent('#status')).trim() !== '整改中') throw new Error('not dispatched');
  await page.waitForSelector('text=分派给：镇安监办。请一周内设置护栏');
  await shot('dash-03-record');
  step('statistics and map render');
  await page.click('nav a[href="/stats"]');
  await page.waitForSelector('#resolution');
  await shot('dash-04-stats');
  await page.click('nav a[href="/map"]');
  await page.waitForSelector('svg.map path.grid');
  await shot('dash-05-map');
  await page.click('nav a[href="/data"]');
  await page.waitForSelector('h1');
  await shot('dash-06-data');
  step('an import with bad rows reports each row and imports nothing');
  const csv = [
    '网格编码,门牌号,地址,姓名,与户主关系,性别,身份证号,联系电话,标签',
    '999999999999001,1,外村1号,张三,户主,男,,13800138000,',
    '361003100200001,2,山下村1组2号,李四,户主,男,110105194912310029,1380013800,低保',
    '361003100200001,2,山下村1组2号,王五,配偶,火星,,,',
  ].join('\n');
  await page.setInputFiles('#file', { name: 'people.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.click('#import-submit');
  await page.waitForSelector('#outcome');
  await page.waitForSelector('#report');
  const rows = await page.locator('#report tbody tr').count();
  if (rows < 3) throw new Error(`expected a row per error, got ${rows}`);
  await shot('dash-07-import-report');
  step('county settings: a cadence of 0 is refused beside its field, keeping what was typed');
  await page.click('nav a[href="/settings"]');
  await page.waitForSelector('#settings');
  await page.fill('#cadence_ELDERLY_ALONE', '0');
  await page.click('#save');
  await page.waitForSelector('#err-cadence_ELDERLY_ALONE');
  if ((await page.inputValue('#cadence_ELDERLY_ALONE')) !== '0') throw new Error('typed value lost');
  await shot('dash-09-settings-error');
  step('a good cadence is saved and audited');
  await page.fill('#cadence_ELDERLY_ALONE', '5');
  await page.click('#save');
  await page.waitForSelector('.flash.ok');
  await page.waitForSelector('#settings-log:has-text("独居/空巢老人走访周期 7→5 天")');
  step('the safety office signs in and finds it on 我的待办');
  await page.click('form[action="/logout"] button');
  await page.waitForSelector('#signin');
  await page.fill('#username', 'town-safety');
  await page.fill('#password', 'gridwalk-demo');
  await page.click('#signin');
  await page.waitForSelector('h1:has-text("我的待办")');
  if (await page.locator('nav a[href="/stats"]').count()) throw new Error('an assignee sees statistics');
  await shot('dash-08-todo');
  await page.click(`#mine a:has-text("${text}")`);
  await page.waitForSelector('#assigned-to');
  step('the office reports it rectified');
  await page.fill('#note', '护栏已装好');
  await page.click('#move-RECTIFIED');
  await page.waitForSelector('.flash.ok');
  if ((await page.textContent('#status')).trim() !== '已整改') throw new Error('not rectified');
  step('other pages are refused to the office');
  const res = await page.goto(base + '/stats');
  if (res.status() !== 403) throw new Error(`statistics answered ${res.status()} to an assignee`);
  step('nothing on the pages was blocked by their content security policy');
  if (blocked.length) throw new Error(`blocked by the policy:\n${blocked.join('\n')}`);
  console.log('dashboard: all steps passed');
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
  if (process.env.FAIL_SHOT) await page.screenshot({ path: process.env.FAIL_SHOT, fullPage: true });
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
