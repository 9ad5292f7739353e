//! Name material for the demo county: the article's county (东乡区, 抚州市, 江西省) and its
//! towns, village name parts, common surnames and given-name characters.

/// 抚州市东乡区.
pub const COUNTY_CODE: &str = "361003";
pub const COUNTY_NAME: &str = "东乡区";
/// Rough extent of the county: lon, lat of the south-west and north-east corners.
pub const EXTENT: ([f64; 2], [f64; 2]) = ([116.38, 28.02], [116.86, 28.42]);

/// The towns; the village of the demo accounts (山下村) is in the first.
pub const TOWNS: &[&str] = &[
    "杨桥殿镇",
    "孝岗镇",
    "小璜镇",
    "圩上桥镇",
    "马圩镇",
    "詹圩镇",
    "岗上积镇",
    "黎圩镇",
    "王桥镇",
    "邓家乡",
    "虎圩乡",
    "珀玕乡",
    "瑶圩乡",
];

/// Villages the article names come first; the rest are made from the parts below.
pub const NAMED_VILLAGES: &[&str] = &["山下村", "长林村", "路头村", "港下村", "松湖村", "西江村"];

pub const VILLAGE_PREFIXES: &[&str] = &[
    "上坊", "下坊", "东源", "南岭", "北港", "石门", "枫林", "桥头", "塘边", "竹山", "黄岗", "新田",
    "大塘", "小港", "高坪", "洪塘", "里湖", "杉木", "荷塘", "樟树", "白石", "青山", "龙溪", "凤岭",
    "金竹", "茶园", "梅溪", "柏林", "溪口", "坪上", "陂下", "岭背", "湖坪", "圳口", "田心", "水口",
    "双港", "三房", "五里", "七里", "九龙", "官田",
];

/// Surnames, most common first (the generator weights them by position).
pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "吴", "周", "徐", "饶", "艾", "乐", "邓", "胡", "何",
    "罗", "熊", "付", "朱", "彭", "曾", "吴", "章", "万", "危", "邹", "黎", "詹", "余", "孙", "谢",
];

pub const GIVEN_MALE: &[&str] = &[
    "伟", "强", "军", "平", "勇", "明", "华", "建", "国", "文", "斌", "林", "振", "行", "生", "能",
    "顺", "超", "斌", "晔", "阳", "东", "海", "春", "志", "金", "水", "根", "福", "荣", "德", "发",
];

pub const GIVEN_FEMALE: &[&str] = &[
    "芳", "娟", "敏", "静", "丽", "英", "兰", "秀", "梅", "霞", "萍", "红", "玉", "燕", "珍", "凤",
    "美", "婷", "雪", "琴", "莲", "桂", "春", "花", "云", "菊", "香", "娥", "琳", "慧", "佳", "欣",
];

/// Area codes of floating residents' home counties (other Jiangxi counties and neighbours).
pub const OTHER_REGIONS: &[&str] = &[
    "360102", "361002", "361025", "362502", "360681", "350102", "430102", "330106",
];

pub const MOBILE_PREFIXES: &[&str] = &[
    "138", "139", "135", "136", "150", "151", "152", "158", "159", "182", "187", "188", "199",
    "177",
];

pub const HAZARD_TEXTS: &[(&str, &str)] = &[
    ("FIRE", "村民屋后堆放大量柴草，靠近灶台，存在火灾隐患"),
    ("ELECTRICAL", "老旧房屋电线裸露老化，私拉乱接"),
    ("GAS", "餐馆液化气钢瓶未设置防倾倒措施"),
    ("STRUCTURE", "土坯房墙体开裂，雨季有倒塌风险，仍有老人居住"),
    ("CORRIDOR_EBIKE", "楼道内停放电动车并飞线充电"),
    ("PRODUCTION", "砖厂作业区未设置安全警示标志"),
    ("FOOD", "小卖部售卖过期食品"),
    ("HAZMAT", "农资店农药与食品混放"),
    ("TRAFFIC", "村口急弯处缺少减速带和反光镜"),
    ("GEO_FLOOD", "山体边坡有落石，下方有民房"),
    ("WATER", "村头池塘无护栏、无警示牌，暑期有儿童玩水"),
    ("ENVIRONMENT", "废弃猪牛栏破旧不堪，污水外溢"),
    ("PUBLIC_SECURITY", "夜间有陌生车辆在村内徘徊"),
];

pub const OPINION_TEXTS: &[(&str, &str)] = &[
    ("INFRASTRUCTURE", "村组希望建一个小广场，方便大家休闲娱乐"),
    ("INFRASTRUCTURE", "通组道路坑洼，雨天出行困难，希望修补"),
    (
        "LIVING_ENVIRONMENT",
        "村头两片废弃池塘水体发黑发臭，希望清淤整治",
    ),
    ("LIVING_ENVIRONMENT", "希望在湖畔植树、安装路灯"),
    ("SOCIAL_SECURITY", "询问城乡居民养老保险缴费档次"),
    ("HEALTH", "希望村卫生室增加慢性病药品"),
    ("EDUCATION", "留守儿童放学后无人看管，希望办课后托管"),
    ("AGRICULTURE", "灌溉水渠堵塞，影响早稻用水"),
    ("PUBLIC_ORDER", "希望在村口加装监控"),
    ("VILLAGE_AFFAIRS", "希望公开村集体收支明细"),
];

pub const DISPUTE_TEXTS: &[(&str, &str)] = &[
    ("NEIGHBOR", "两户因屋檐滴水问题发生争执"),
    ("HOUSE_HOMESTEAD", "宅基地边界不清，建房时发生争议"),
    ("MARRIAGE_FAMILY", "兄弟之间因老人赡养问题产生矛盾"),
    ("LAND_FOREST", "山林承包界址争议"),
    ("UNPAID_WAGES", "务工人员反映工程款拖欠"),
    ("DAMAGES", "村民因机器操作不当受伤，家属索要赔偿"),
    ("TRAFFIC_ACCIDENT", "农用车与电动车剐蹭，赔偿未谈拢"),
    ("COLLECTIVE_ASSETS", "土地流转租金分配有异议"),
];

pub const PATROL_NOTES: &[&str] = &[
    "沿村主干道巡查，未发现异常",
    "夜间巡防，提醒村民关好门窗",
    "巡查池塘、河道周边，劝离玩水儿童",
    "检查沿街店铺消防器材",
];
