// Drives the gridwalk app at phone size (390×844) in headless Chromium through the liveview
// harness: files one record of each duty without a record type of its own (特殊人群服务,
// 政策宣传, 民生服务, 其他), each after a bad value refused beside its field, a tab switch
// in the middle of the form, and a double tap on submit; then finds each in 我的记录.
// Usage: node duties.mjs <url>. Exits non-zero on the first failed step; the Rust test then
// checks the device store.
import { chromium } from 'playwright-core';

const [url] = process.argv.slice(2);
if (!url) { console.error('usage: node duties.mjs <url>'); process.exit(2); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
page.setDefaultTimeout(15000);
const step = (name) => console.log(`step: ${name}`);
let failed = false;
// The message beside the field whose label reads `label`.
const beside = (label) => page.evaluate((label) => {
  for (const f of document.querySelectorAll('.field')) {
    const l = f.querySelector('.field-label');
    if (l && l.textContent.trim() === label) return f.querySelector('.field-error')?.textContent.trim() || null;
  }
  return undefined;
}, label);
// The message beside `label` goes once the value is fixed (the edit's round trip to the app
// first); `what` says which fix left it standing.
const expectCleared = async (label, what) => {
  try {
    await page.waitForFunction((label) => {
      for (const f of document.querySelectorAll('.field')) {
        const l = f.querySelector('.field-label');
        if (l && l.textContent.trim() === label) return !f.querySelector('.field-error')?.textContent.trim();
      }
      return true;
    }, label, { timeout: 10000 });
  } catch {
    throw new Error(`the message stayed after ${what}: ${await beside(label)}`);
  }
};
const expectBeside = async (label, text) => {
  await page.waitForFunction(([label, text]) => {
    for (const f of document.querySelectorAll('.field')) {
      const l = f.querySelector('.field-label');
      if (l && l.textContent.trim() === label) return (f.querySelector('.field-error')?.textContent || '').includes(text);
    }
    return false;
  }, [label, text]);
};
const openKind = async (kind, first) => {
  await page.click('#tab-report');
  await page.click(`#kind-${kind}`);
  await page.waitForSelector(first);
};
const filed = async (submit) => {
  await page.dblclick(submit);
  await page.waitForSelector('#record-summary');
  if (await page.locator('.field-error').count() > 0) throw new Error(`${submit}: a double tap showed an error`);
};
try {
  step('unlock with the PIN');
  await page.goto(url);
  await page.fill('#pin', '123456');
  await page.click('#unlock');
  await page.waitForSelector('text=今日工作');

  step('the kind chooser holds every duty and fits 390 px');
  await page.click('#tab-report');
  for (const k of ['hazard', 'opinion', 'dispute', 'emergency', 'special-pop', 'publicity', 'livelihood', 'other']) {
    const box = await page.locator(`#kind-${k}`).boundingBox();
    if (!box || box.x < 0 || box.x + box.width > 390) throw new Error(`kind-${k} is off screen: ${JSON.stringify(box)}`);
  }

  step('特殊人群服务: nothing chosen is refused beside each field');
  await openKind('special-pop', '#sp-service');
  await page.click('#sp-submit');
  await expectBeside('服务对象', '请选择服务对象');
  await expectBeside('服务内容', '请选择服务内容');
  const listed = await page.locator('#sp-person-list li').allTextContents();
  for (const m of ['社区矫正', '刑满释放', '严重精神障碍', '吸毒', '重点信访']) {
    if (listed.some((t) => t.includes(m))) throw new Error(`the chooser shows a managed tag ${m}`);
  }
  const first = listed[0].trim();
  await page.fill('#sp-person-search', first.slice(0, 2));
  await page.click('#sp-person-list button.choice >> nth=0');
  await page.waitForSelector('#sp-person-chosen');
  await expectCleared('服务对象', 'choosing a person');
  const person = (await page.textContent('#sp-person-chosen')).split(' · ')[0];
  await page.selectOption('#sp-service', 'CARE_VISIT');
  await page.fill('#sp-content', '上门看望，送去米油');

  step('a tab switch mid-form keeps the draft');
  await page.click('#tab-today');
  await page.waitForSelector('text=今日工作');
  await openKind('special-pop', '#sp-person-chosen');
  if (await page.inputValue('#sp-content') !== '上门看望，送去米油') throw new Error('the text was lost on a tab switch');
  if (await page.inputValue('#sp-service') !== 'CARE_VISIT') throw new Error('the service was lost on a tab switch');
  if (!(await page.textContent('#sp-person-chosen')).startsWith(person)) throw new Error('the person was lost on a tab switch');
  await filed('#sp-submit');
  if (!(await page.textContent('#event-fields')).includes(person)) throw new Error('the record page does not name the person');

  step('政策宣传: an audience of 0 is refused beside it');
  await openKind('publicity', '#pb-topic');
  await page.fill('#pb-topic', '防范电信诈骗');
  await page.fill('#pb-place', '村委会');
  await page.fill('#pb-audience', '0');
  await page.fill('#pb-content', '讲解常见诈骗手法');
  await page.click('#pb-submit');
  await expectBeside('受众人数', '受众人数须为 1 到');
  await page.fill('#pb-audience', '45');
  await expectCleared('受众人数', 'fixing the audience');
  await filed('#pb-submit');

  step('民生服务: a matter is needed; resolved on the spot');
  await openKind('livelihood', '#lv-matter');
  await page.fill('#lv-content', '代办医保缴费');
  await page.click('#lv-submit');
  await expectBeside('事项', '请选择事项');
  await page.selectOption('#lv-matter', 'INSURANCE');
  await page.fill('#lv-household-search', '村');
  await page.click('button[data-household] >> nth=0');
  await page.waitForSelector('#lv-household-chosen');
  await page.check('#lv-resolved');
  await filed('#lv-submit');
  if (!(await page.textContent('#record-status')).includes('已办结')) throw new Error('not filed as resolved');

  step('其他: a title is needed');
  await openKind('other', '#ot-title');
  await page.fill('#ot-content', '村口路灯三天不亮');
  await page.click('#ot-submit');
  await expectBeside('标题', '请填写标题');
  await page.fill('#ot-title', '村口路灯不亮');
  await page.selectOption('#ot-urgency', 'URGENT');
  await filed('#ot-submit');

  step('each is in 我的记录');
  await page.click('#tab-records');
  for (const text of ['走访慰问', '防范电信诈骗', '医保社保', '村口路灯不亮']) {
    await page.waitForSelector(`text=${text}`);
  }
  console.log('duties: all steps passed');
} catch (e) {
  failed = true;
  console.error(`duties failed: ${e.message}`);
  try { await page.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-flow-failure.png', fullPage: true }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
