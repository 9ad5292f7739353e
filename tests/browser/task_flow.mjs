// A task from the county to a grid worker and back, in headless Chromium: the app through
// the liveview harness at phone size, the county through its dashboard, both against one
// real gridwalk-server.
//   node task_flow.mjs <app-url> <server-url> <record-id> <photo>
// enrol worker-a; the county gives worker-a a hazard recheck from the record's page; the next
// sync puts it first on Today (and in the feedback inbox); completing it without a photo is
// refused beside the field; with one it is done; after a sync the county's 任务 page shows it
// done: who, when, the note and the photo.
import { chromium } from 'playwright-core';

const [appUrl, server, record, photo] = process.argv.slice(2);
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
const blocked = [];
county.on('console', (m) => { if (/Content Security Policy/.test(m.text())) blocked.push(m.text()); });
const sync = async () => {
  await phone.click('#tab-sync');
  await phone.click('#sync-now');
  await phone.waitForSelector('#sync-summary');
  console.log(await phone.textContent('#sync-summary'));
  await phone.click('#tab-today');
};
// Screenshots for a person to look at, when SHOTS names a directory.
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
  if (await phone.locator('#task-list').count() !== 0) throw new Error('a task before any was given');

  step('the county gives worker-a a hazard recheck from the record page');
  await county.goto(server + '/login');
  await county.fill('#username', 'admin');
  await county.fill('#password', 'gridwalk-demo');
  await county.click('#signin');
  await county.waitForSelector('h1:has-text("待办队列")');
  await county.goto(`${server}/records/${record}`);
  await county.click('#give-task');
  await county.waitForSelector('#task-form');
  if (await county.inputValue('#kind') !== 'RECHECK_HAZARD') throw new Error('a hazard asks for a recheck by default');
  await county.selectOption('#assignee', 'worker-a');
  await county.fill('#task-note', '请复查护栏是否装好，拍照上传');
  await county.click('#give');
  await county.waitForSelector('.flash.ok');
  await county.waitForSelector('#tasks tr:has-text("请复查护栏是否装好")');
  console.log('county: ' + (await county.textContent('#tasks tbody tr')).replace(/\s+/g, ' '));

  step('the next sync puts it first on Today and in the inbox');
  await sync();
  await phone.waitForSelector('#task-list a.card:has-text("复查隐患")');
  const first = await phone.evaluate(() => {
    const t = document.getElementById('tasks-heading');
    const r = document.getElementById('report-hazard');
    return !!(t && r && (t.compareDocumentPosition(r) & Node.DOCUMENT_POSITION_FOLLOWING));
  });
  if (!first) throw new Error('the tasks are not above the rest of Today');
  await shot(phone, 'task-01-today');
  await phone.waitForSelector('#feedback-badge');
  await phone.click('#task-list a.card');
  await phone.waitForSelector('#task-note:has-text("请复查护栏是否装好")');

  step('completing a recheck without a photo is refused beside the field');
  await phone.fill('#done-note', '护栏已装好，警示牌已立');
  await phone.click('#task-complete');
  await phone.waitForSelector('.field.invalid .field-error:has-text("现场照片")');
  if (await phone.inputValue('#done-note') !== '护栏已装好，警示牌已立') throw new Error('the note was lost');
  await shot(phone, 'task-02-refused');

  step('with a photo it is done');
  await phone.setInputFiles('#photo-file', photo);
  await phone.waitForSelector('.photo-list li');
  await phone.click('#task-complete');
  await phone.waitForSelector('#task-done:has-text("护栏已装好")');
  await shot(phone, 'task-03-done');
  await sync();
  if (await phone.locator('#task-list').count() !== 0) throw new Error('a done task still on Today');

  step('the county sees it done, with who, the note and the photo');
  // A push is acknowledged once it is queued in the county's inbox, and applied moments
  // later: the clerk's page shows it on a reload.
  const row = county.locator('#tasks tr:has-text("请复查护栏是否装好")');
  for (let i = 0; ; i++) {
    await county.goto(server + '/tasks');
    if (await row.locator('.task-status:has-text("已完成")').count()) break;
    if (i === 40) throw new Error('the completion never reached the county');
    await county.waitForTimeout(500);
  }
  await row.locator('td.done:has-text("护栏已装好，警示牌已立")').waitFor();
  const who = await row.locator('td.done').textContent();
  if (!/网格员/.test(who)) throw new Error(`who completed it is not named: ${who}`);
  const loaded = await row.locator('img.task-photo').evaluate((img) => img.complete && img.naturalWidth > 0);
  if (!loaded) throw new Error('the photo does not show');
  console.log('county: ' + who.replace(/\s+/g, ' '));
  await shot(county, 'task-04-county');
  if (blocked.length) throw new Error(`the page policy blocked: ${blocked.join('; ')}`);
  console.log('flows: all steps passed');
} catch (e) {
  failed = true;
  console.error(`flows failed: ${e.message}`);
  try { await phone.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-task-failure.png' }); } catch {}
  try { await county.screenshot({ path: (process.env.FAIL_SHOT || '/tmp/gridwalk-task-failure.png').replace('.png', '-county.png') }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
