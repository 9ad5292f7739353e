// The app syncs by itself, in a real browser against a real county server behind a gate the
// test opens and shuts. The worker never taps 立即同步:
//   node autosync_flow.mjs <app-url> <gate-control-url>
// 1. The server is unreachable: the pill says 离线 and the worker saves a hazard (待上传 1).
// 2. The gate opens: the hazard goes up with no click (待上传 0, 在线).
// 3. The county replies (the Rust test does it once the hazard is on the server): an unread
//    badge appears with no click; opening the inbox item clears it.
import { chromium } from 'playwright-core';

const [url, control] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
page.setDefaultTimeout(30000);
const step = (name) => console.log(`step: ${name}`);
let failed = false;
try {
  await page.goto(url);
  await page.fill('#pin', '123456');
  await page.click('#unlock');
  await page.waitForSelector('text=今日工作');

  step('the server does not answer: the pill says so');
  await page.waitForSelector('#online:has-text("离线")');

  step('a hazard is saved offline');
  await page.click('#report-hazard');
  await page.waitForSelector('#hz-description');
  await page.selectOption('#hz-category', 'ELECTRICAL');
  await page.fill('#hz-description', '村口变压器围栏破损，儿童可进入');
  await page.click('#hz-submit');
  await page.waitForSelector('#record-summary');
  await page.click('#tab-today');
  await page.waitForSelector('#pending:has-text("待上传 1 条")');

  step('the server comes back: the hazard goes up with no click');
  const res = await fetch(`${control}/open`);
  if (!res.ok) throw new Error(`gate control answered ${res.status}`);
  await page.waitForSelector('#pending:has-text("待上传 0 条")');
  await page.waitForSelector('#online:has-text("在线")');

  step('the county replies: an unread badge appears with no click');
  await page.waitForSelector('#tab-feedback-badge', { timeout: 60000 });
  // The county's move and its reply may come in two syncs: wait for the reply too.
  await page.waitForSelector('#feedback-badge');
  await page.click('#feedback-badge');
  await page.waitForSelector('#feedback-list .feedback-item.unread >> text=供电所明天上午来修围栏', { timeout: 60000 });
  console.log('badge: ' + await page.textContent('#tab-feedback-badge'));

  step('opening the inbox item clears the badge');
  await page.click('#feedback-list .feedback-item >> text=供电所明天上午来修围栏');
  const reply = page.locator('.reply:has-text("供电所明天上午来修围栏")');
  await reply.waitFor();
  console.log('reply: ' + await reply.textContent());
  await page.click('#tab-today');
  await page.waitForSelector('text=今日工作');
  if (await page.locator('#tab-feedback-badge').count() > 0) {
    throw new Error('the unread badge is still there after opening the item');
  }
  console.log('flows: all steps passed');
} catch (e) {
  failed = true;
  console.error(`flows failed: ${e.message}`);
  try { await page.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-autosync-failure.png' }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
