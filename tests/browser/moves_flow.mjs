// The worker's moves (办理) in headless Chromium: the app through the liveview harness at phone
// size, the county through its dashboard, both against one real gridwalk-server.
//   node moves_flow.mjs <app-url> <server-url> <hazard-id>
// (a) the county returns worker-a's hazard with a note; after a sync the worker opens it, reads
// the note, edits it and resubmits; after a sync the county confirms it, and after the next sync
// the phone shows it 已确认.
// (b) a dispute registered on the phone, mediation started, a session recorded, 调解成功 with
// the resident's satisfaction, then 回访 with satisfaction; then synced (the test checks the
// server holds it as FOLLOW_UP).
import { chromium } from 'playwright-core';

const [appUrl, server, hazard] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
const county = await browser.newPage({ viewport: { width: 1280, height: 900 } });
phone.setDefaultTimeout(20000);
county.setDefaultTimeout(20000);
const step = (name) => console.log(`step: ${name}`);
// A sync has ended when the run shown under the button is a new one (its start, to the
// microsecond) and the button is free again: an earlier run's summary is still on the screen
// while the next one runs, and two runs can start within the same displayed second.
const sync = async () => {
  await phone.click('#tab-sync');
  const before = await phone.evaluate(() => document.querySelector('#sync-last-run')?.dataset.at ?? null);
  await phone.click('#sync-now');
  await phone.waitForFunction((before) => {
    const last = document.querySelector('#sync-last-run');
    const button = document.querySelector('#sync-now');
    return last && last.dataset.at !== before && button && !button.disabled;
  }, before);
  await phone.waitForSelector('#sync-summary');
  console.log(await phone.textContent('#sync-summary'));
};
const openHazard = async () => {
  await phone.click('#tab-records');
  await phone.click('.rec-list a.card:has-text("村头池塘")');
  await phone.waitForSelector('#record-summary');
};
const countyMove = async (to, note) => {
  await county.goto(`${server}/records/${hazard}`);
  if (note) await county.fill('#note', note);
  await county.click(`#move-${to}`);
  await county.waitForSelector('.flash.ok');
};
const shot = async (page, name) => { if (process.env.SHOTS) await page.screenshot({ path: `${process.env.SHOTS}/${name}.png`, fullPage: true }); };
let failed = false;
try {
  step('enrol worker-a');
  await phone.goto(appUrl);
  await phone.fill('#server', server);
  await phone.fill('#username', 'worker-a');
  await phone.fill('#password', 'gridwalk-demo');
  await phone.fill('#new-pin', '123456');
  await phone.fill('#new-pin2', '123456');
  await phone.click('#enrol');
  await phone.waitForSelector('text=今日工作');

  step('(a) the county returns the hazard with a note');
  await county.goto(server + '/login');
  await county.fill('#username', 'admin');
  await county.fill('#password', 'gridwalk-demo');
  await county.click('#signin');
  await county.waitForSelector('h1:has-text("待办队列")');
  await countyMove('RETURNED', '请写明池塘的具体位置和水深');

  step('(a) after a sync the worker reads the note and resubmits an edit');
  await sync();
  await openHazard();
  await phone.waitForSelector('#return-note:has-text("请写明池塘的具体位置和水深")');
  await phone.click('[data-move="REPORTED"]');
  await phone.waitForSelector('#move-text');
  if (await phone.inputValue('#move-text') !== '村头池塘无护栏，暑期有儿童玩水') throw new Error('the text to edit is not the record\'s');
  await phone.fill('#move-text', '村头池塘（村委会东侧50米）无护栏，水深约2米，暑期有儿童玩水');
  if (await phone.inputValue('#move-place') !== '村头池塘') throw new Error('the place to edit is not the record\'s');
  await phone.fill('#move-place', '村委会东侧池塘');
  await phone.selectOption('#move-urgency', 'MAJOR');
  await shot(phone, 'moves-01-resubmit');
  await phone.click('#move-submit');
  await phone.waitForSelector('ol.history li:has-text("退回 → 已上报")');
  await phone.waitForSelector('[data-move="RECTIFIED"]');
  if (await phone.locator('#return-note').count() !== 0) throw new Error('the return note still shows after the resubmit');
  await phone.waitForSelector('#record-summary:has-text("水深约2米")');
  await sync();

  step('(a) the county confirms; the phone shows it after a sync');
  // A push is acknowledged once it is queued in the county's inbox, and applied moments
  // later: the clerk's page shows the edit on a reload.
  for (let i = 0; ; i++) {
    await county.goto(`${server}/records/${hazard}`);
    if (await county.locator('text=水深约2米').count()) break;
    if (i === 40) throw new Error('the resubmitted edit never reached the county');
    await county.waitForTimeout(500);
  }
  await countyMove('CONFIRMED', '');
  await sync();
  await openHazard();
  await phone.waitForSelector('#record-status:has-text("已确认")');
  await phone.waitForSelector('ol.history li:has-text("已上报 → 已确认")');
  if (await phone.locator('[data-move="REPORTED"]').count() !== 0) throw new Error('a confirmed hazard still offers a resubmit');

  step('(b) register a dispute on the phone');
  await phone.click('#tab-report');
  await phone.click('#kind-dispute');
  await phone.waitForSelector('#dp-summary');
  await phone.fill('#dp-summary', '两户因排水沟堵塞发生争执');
  await phone.fill('.party-name >> nth=0', '张三');
  await phone.fill('.party-name >> nth=1', '李四');
  await phone.click('#dp-submit');
  await phone.waitForSelector('#record-summary:has-text("排水沟")');

  step('(b) start mediation and record a session');
  await phone.click('[data-move="MEDIATING"]');
  await phone.click('#move-submit');
  await phone.waitForSelector('ol.history li:has-text("→ 调解中")');
  await phone.fill('#ms-participants', '张三, 李四, 村调解员');
  await phone.fill('#ms-notes', '双方同意共同清理排水沟');
  await phone.fill('#ms-agreement', '每户各出一人，周六清理');
  await phone.click('#ms-add');
  await phone.waitForSelector('#sessions li:has-text("双方同意共同清理排水沟")');

  step('(b) 调解成功 needs a note: refused beside the field, then made');
  await phone.click('[data-move="SUCCESS"]');
  await phone.click('#move-submit');
  await phone.waitForSelector('#move-form .field.invalid .field-error');
  const why = await phone.textContent('#move-form .field.invalid .field-error');
  if (!/办理情况/.test(why)) throw new Error(`the note is not named: ${why}`);
  await phone.selectOption('#move-sat', 'BASIC');
  await phone.fill('#move-note', '排水沟已疏通，双方和解');
  await phone.click('#move-submit');
  await phone.waitForSelector('ol.history li:has-text("→ 调解成功")');

  step('(b) 回访 with the resident\'s satisfaction');
  await phone.click('[data-move="FOLLOW_UP"]');
  await phone.selectOption('#move-sat', 'SATISFIED');
  await phone.fill('#move-note', '回访两户，排水通畅，无新矛盾');
  await phone.click('#move-submit');
  await phone.waitForSelector('#follow-up:has-text("回访两户")');
  await phone.waitForSelector('ol.history li:has-text("调解成功 → 回访")');
  await shot(phone, 'moves-02-follow-up');
  await sync();
  console.log('flows: all steps passed');
} catch (e) {
  failed = true;
  console.error(`flows failed: ${e.message}`);
  try { await phone.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-moves-failure.png' }); } catch {}
  try { await county.screenshot({ path: (process.env.FAIL_SHOT || '/tmp/gridwalk-moves-failure.png').replace('.png', '-county.png') }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
