// The sync flows of the gridwalk app against a real gridwalk-server, through the liveview
// harness in headless Chromium. Two modes, run one after the other by the Rust test:
//   node sync_flow.mjs enrol  <app-url> <server-url> <photo>  enrol worker-a, report a hazard
//                                                               with a photo, sync
//   node sync_flow.mjs answer <app-url> <reply-text>  unlock, sync, read the county's reply
import { chromium } from 'playwright-core';

const [mode, url, arg, photo] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 400, height: 820 } });
page.setDefaultTimeout(20000);
const step = (name) => console.log(`step: ${name}`);
let failed = false;
try {
  await page.goto(url);
  if (mode === 'enrol') {
    step('a wrong password is refused in plain words');
    await page.fill('#server', arg);
    await page.fill('#username', 'worker-a');
    await page.fill('#password', 'wrong-password');
    await page.fill('#new-pin', '123456');
    await page.fill('#new-pin2', '123456');
    await page.click('#enrol');
    await page.waitForSelector('.gate .note.error');
    step('enrol with the right password');
    await page.fill('#password', 'gridwalk-demo');
    await page.fill('#new-pin', '123456');
    await page.fill('#new-pin2', '123456');
    await page.click('#enrol');
    await page.waitForSelector('text=今日工作');
    step('report a hazard offline-first');
    await page.click('#report-hazard');
    await page.waitForSelector('#hz-description');
    await page.selectOption('#hz-category', 'WATER');
    await page.fill('#hz-description', '村头池塘无护栏，暑期有儿童玩水');
    await page.setInputFiles('#photo-file', photo);
    await page.waitForSelector('.photo-list li');
    await page.click('#hz-submit');
    await page.waitForSelector('#record-summary');
    step('sync');
    await page.click('#tab-sync');
    await page.click('#sync-now');
    await page.waitForSelector('#sync-summary');
    console.log(await page.textContent('#sync-summary'));
  } else if (mode === 'answer') {
    step('unlock with the PIN');
    await page.fill('#pin', '123456');
    await page.click('#unlock');
    await page.waitForSelector('text=今日工作');
    step('sync brings the county answer');
    await page.click('#tab-sync');
    await page.click('#sync-now');
    await page.waitForSelector('#sync-summary');
    console.log(await page.textContent('#sync-summary'));
    await page.click('#tab-records');
    await page.click('.rec-list a.card:has-text("村头池塘")');
    await page.waitForSelector(`.reply:has-text("${arg}")`);
    console.log('status: ' + await page.textContent('#record-status'));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  console.log('flows: all steps passed');
} catch (e) {
  failed = true;
  console.error(`flows failed: ${e.message}`);
  try { await page.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-sync-failure.png' }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
