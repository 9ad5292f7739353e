//! Every category, urgency, tag and other code of the field, as an enum with a stable stored
//! code and its Chinese and English labels.
//!
//! The stored code is what goes into SQLite, onto the wire and into exports; it never changes
//! once released. The labels are what people read: Chinese first, English second.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The label language shown to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

/// A code that names no variant of the enum it was read for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} code {code:?} (known: {known})")]
pub struct UnknownCode {
    pub kind: &'static str,
    pub code: String,
    pub known: String,
    /// The Chinese labels of the known codes, for the message a person reads.
    pub known_zh: String,
}

impl UnknownCode {
    /// The Chinese name of the kind of code ("隐患类别" for "hazard category").
    pub fn kind_zh(&self) -> &'static str {
        kind_zh(self.kind)
    }
}

/// The Chinese name of a kind of code (`Coded::KIND`): "隐患类别" for "hazard category".
pub fn kind_zh(kind: &str) -> &'static str {
    match kind {
        "domain" => "事项类型",
        "urgency" => "紧急程度",
        "supervision level" => "督办等级",
        "deadline state" => "时限状态",
        "hazard category" => "隐患类别",
        "hazard severity" => "隐患等级",
        "opinion category" => "社情民意类别",
        "dispute category" => "纠纷类别",
        "mediation method" => "调解方式",
        "party role" => "当事人身份",
        "satisfaction" => "满意度",
        "emergency category" => "突发事件类别",
        "emergency level" => "突发事件等级",
        "emergency report stage" => "报告阶段",
        "deliberation stage" => "议事阶段",
        "visit purpose" => "走访目的",
        "house use" => "房屋用途",
        "sex" => "性别",
        "person type" => "人员类别",
        "residence status" => "居住状态",
        "person status" => "人员状态",
        "relation to head" => "与户主关系",
        "special-population tag" => "标签",
        "status" => "状态",
        "entity kind" => "数据类型",
        _ => "代码",
    }
}

/// What every coded enum offers.
pub trait Coded: Sized + Copy + 'static {
    /// The enum's name, used in error messages ("hazard category").
    const KIND: &'static str;
    /// Every variant, in display order.
    const ALL: &'static [Self];
    fn code(self) -> &'static str;
    fn zh(self) -> &'static str;
    fn en(self) -> &'static str;
    fn label(self, lang: Lang) -> &'static str {
        match lang {
            Lang::Zh => self.zh(),
            Lang::En => self.en(),
        }
    }
    fn from_code(code: &str) -> Result<Self, UnknownCode> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.code() == code)
            .ok_or_else(|| UnknownCode {
                kind: Self::KIND,
                code: code.to_owned(),
                known: Self::ALL
                    .iter()
                    .map(|v| v.code())
                    .collect::<Vec<_>>()
                    .join(", "),
                known_zh: Self::ALL
                    .iter()
                    .map(|v| v.zh())
                    .collect::<Vec<_>>()
                    .join("、"),
            })
    }
}

/// Declares a coded enum: `Variant = "CODE", "中文", "English";`.
macro_rules! coded_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($variant:ident = $code:literal, $zh:literal, $en:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant,)+ }

        impl $crate::domain::codes::Coded for $name {
            const KIND: &'static str = $kind;
            const ALL: &'static [Self] = &[$(Self::$variant,)+];
            fn code(self) -> &'static str { match self { $(Self::$variant => $code,)+ } }
            fn zh(self) -> &'static str { match self { $(Self::$variant => $zh,)+ } }
            fn en(self) -> &'static str { match self { $(Self::$variant => $en,)+ } }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::domain::codes::Coded::code(*self))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::codes::UnknownCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as $crate::domain::codes::Coded>::from_code(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::domain::codes::Coded::code(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <Self as $crate::domain::codes::Coded>::from_code(&s).map_err(serde::de::Error::custom)
            }
        }

        /// In the API's description: one of the stored codes, each with its labels.
        #[cfg(feature = "server")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let labels: Vec<String> = vec![$(format!("`{}` {} ({})", $code, $zh, $en)),+];
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($code),+]))
                    .description(Some(format!("The {} as a code: {}.", $kind, labels.join("; "))))
                    .into()
            }
        }

        #[cfg(feature = "server")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}
pub(crate) use coded_enum;

coded_enum!(
    /// The event domains of the nine duties.
    Domain, "domain" {
        Opinion = "OPINION", "社情民意", "Public opinion";
        Dispute = "DISPUTE", "矛盾纠纷", "Dispute";
        Patrol = "PATROL", "治安巡防", "Patrol";
        Hazard = "HAZARD", "安全隐患", "Safety hazard";
        SpecialPop = "SPECIAL_POP", "特殊人群服务", "Special population service";
        Emergency = "EMERGENCY", "突发事件", "Emergency";
        Publicity = "PUBLICITY", "政策宣传", "Policy publicity";
        Livelihood = "LIVELIHOOD", "民生服务", "Livelihood service";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    /// How urgent a record is; a flag beside the status, not a status.
    Urgency, "urgency" {
        Normal = "NORMAL", "普通", "Normal";
        Urgent = "URGENT", "紧急", "Urgent";
        Major = "MAJOR", "重大", "Major";
    }
);

impl Urgency {
    /// The more pressing of this and `floor` (普通 < 紧急 < 重大): what a worker chose, never
    /// below what the record's own facts make it (a 重大 hazard is at least 紧急).
    pub fn at_least(self, floor: Urgency) -> Urgency {
        let rank = |u: Urgency| match u {
            Urgency::Normal => 0,
            Urgency::Urgent => 1,
            Urgency::Major => 2,
        };
        if rank(self) >= rank(floor) {
            self
        } else {
            floor
        }
    }
}

coded_enum!(
    /// Supervision level (督办) set by the county.
    Supervision, "supervision level" {
        None = "NONE", "无", "None";
        Village = "VILLAGE", "村级督办", "Village";
        Town = "TOWN", "乡镇督办", "Town";
        County = "COUNTY", "区县督办", "County";
    }
);

#[allow(clippy::derivable_impls)] // the enum comes from `coded_enum!`, which derives no Default
impl Default for Supervision {
    fn default() -> Self {
        Supervision::None
    }
}

impl Supervision {
    pub fn is_none(&self) -> bool {
        *self == Supervision::None
    }

    /// How high the level is (none 0, village 1, town 2, county 3).
    pub fn rank(self) -> u8 {
        match self {
            Supervision::None => 0,
            Supervision::Village => 1,
            Supervision::Town => 2,
            Supervision::County => 3,
        }
    }
}

coded_enum!(
    /// Where a record stands against its deadline.
    DeadlineState, "deadline state" {
        OnTime = "ON_TIME", "正常", "On time";
        DueSoon = "DUE_SOON", "将到期", "Due soon";
        Overdue = "OVERDUE", "已超期", "Overdue";
    }
);

coded_enum!(
    HazardCategory, "hazard category" {
        Fire = "FIRE", "消防", "Fire";
        Electrical = "ELECTRICAL", "用电", "Electrical";
        Gas = "GAS", "燃气", "Gas";
        Structure = "STRUCTURE", "房屋结构/危房", "Building structure";
        CorridorEbike = "CORRIDOR_EBIKE", "楼道占用/电动车充电", "Corridor / e-bike charging";
        Production = "PRODUCTION", "安全生产", "Work safety";
        Food = "FOOD", "食品", "Food";
        Hazmat = "HAZMAT", "危化品", "Hazardous chemicals";
        Traffic = "TRAFFIC", "交通", "Traffic";
        GeoFlood = "GEO_FLOOD", "地灾防汛", "Landslide / flood";
        Water = "WATER", "溺水", "Drowning";
        Environment = "ENVIRONMENT", "环境", "Environment";
        PublicSecurity = "PUBLIC_SECURITY", "治安", "Public security";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    Severity, "hazard severity" {
        Low = "LOW", "一般", "Low";
        Medium = "MEDIUM", "较大", "Medium";
        High = "HIGH", "重大", "High";
    }
);

impl Severity {
    /// The urgency a hazard of this severity is filed with: a 重大 hazard is urgent (its
    /// deadlines are the urgent ones); the county may raise any record to MAJOR.
    pub fn urgency(self) -> Urgency {
        match self {
            Severity::High => Urgency::Urgent,
            Severity::Low | Severity::Medium => Urgency::Normal,
        }
    }
}

coded_enum!(
    /// Categories of 社情民意; the domain notes leave them open, these follow common county practice.
    OpinionCategory, "opinion category" {
        Infrastructure = "INFRASTRUCTURE", "基础设施", "Infrastructure";
        LivingEnvironment = "LIVING_ENVIRONMENT", "人居环境", "Living environment";
        SocialSecurity = "SOCIAL_SECURITY", "社会保障", "Social security";
        Health = "HEALTH", "医疗卫生", "Health";
        Education = "EDUCATION", "教育", "Education";
        Agriculture = "AGRICULTURE", "农业生产", "Agriculture";
        PublicOrder = "PUBLIC_ORDER", "社会治安", "Public order";
        VillageAffairs = "VILLAGE_AFFAIRS", "村务管理", "Village affairs";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    DisputeCategory, "dispute category" {
        MarriageFamily = "MARRIAGE_FAMILY", "婚姻家庭", "Marriage and family";
        Neighbor = "NEIGHBOR", "邻里", "Neighbours";
        HouseHomestead = "HOUSE_HOMESTEAD", "房屋宅基地", "House and homestead";
        Contract = "CONTRACT", "合同", "Contract";
        Business = "BUSINESS", "生产经营", "Business";
        Damages = "DAMAGES", "损害赔偿", "Damages";
        LandForest = "LAND_FOREST", "山林土地", "Land and forest";
        Expropriation = "EXPROPRIATION", "征地拆迁", "Expropriation";
        Environment = "ENVIRONMENT", "环境污染", "Pollution";
        Labor = "LABOR", "劳动争议", "Labour";
        UnpaidWages = "UNPAID_WAGES", "欠薪", "Unpaid wages";
        Medical = "MEDICAL", "医疗", "Medical";
        TrafficAccident = "TRAFFIC_ACCIDENT", "交通事故", "Traffic accident";
        PropertyMgmt = "PROPERTY_MGMT", "物业", "Property management";
        VillageAffairs = "VILLAGE_AFFAIRS", "村务", "Village affairs";
        CollectiveAssets = "COLLECTIVE_ASSETS", "土地承包/三资", "Land contracts / collective assets";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    /// The article's five mediation mechanisms.
    MediationMethod, "mediation method" {
        OnSite = "ON_SITE", "现场调处", "On-site mediation";
        JointConsult = "JOINT_CONSULT", "集中会诊", "Joint consultation";
        Appointment = "APPOINTMENT", "预约调处", "By appointment";
        Escort = "ESCORT", "引导陪同", "Escort";
        InfoReport = "INFO_REPORT", "信息报告", "Information report";
    }
);

coded_enum!(
    /// The role of a party in a dispute.
    PartyRole, "party role" {
        Applicant = "APPLICANT", "申请人", "Applicant";
        Respondent = "RESPONDENT", "被申请人", "Respondent";
        Third = "THIRD", "第三人", "Third party";
    }
);

coded_enum!(
    Satisfaction, "satisfaction" {
        Satisfied = "SATISFIED", "满意", "Satisfied";
        Basic = "BASIC", "基本满意", "Basically satisfied";
        Unsatisfied = "UNSATISFIED", "不满意", "Unsatisfied";
    }
);

coded_enum!(
    EmergencyCategory, "emergency category" {
        Natural = "NATURAL", "自然灾害", "Natural disaster";
        Accident = "ACCIDENT", "事故灾难", "Accident";
        PublicHealth = "PUBLIC_HEALTH", "公共卫生", "Public health";
        SocialSecurity = "SOCIAL_SECURITY", "社会安全", "Social security";
    }
);

coded_enum!(
    EmergencyLevel, "emergency level" {
        I = "I", "特别重大", "I (extremely serious)";
        Ii = "II", "重大", "II (serious)";
        Iii = "III", "较大", "III (major)";
        Iv = "IV", "一般", "IV (general)";
    }
);

impl EmergencyLevel {
    /// The urgency an emergency of this level is filed with: every emergency is urgent, a
    /// 特别重大 or 重大 one (I, II) is MAJOR.
    pub fn urgency(self) -> Urgency {
        match self {
            EmergencyLevel::I | EmergencyLevel::Ii => Urgency::Major,
            EmergencyLevel::Iii | EmergencyLevel::Iv => Urgency::Urgent,
        }
    }
}

coded_enum!(
    /// The stage of one emergency report: 初报, 续报, 终报.
    ReportStage, "emergency report stage" {
        Initial = "INITIAL", "初报", "Initial report";
        Update = "UPDATE", "续报", "Update";
        Final = "FINAL", "终报", "Final report";
    }
);

coded_enum!(
    /// The deliberation track of an opinion (三议四步).
    DeliberationStage, "deliberation stage" {
        Proposed = "PROPOSED", "群众提", "Proposed by residents";
        BranchReview = "BRANCH_REVIEW", "支部审", "Branch review";
        Deliberation = "DELIBERATION", "贤良议", "Deliberation by elders";
        PublicEval = "PUBLIC_EVAL", "群众评", "Evaluated by residents";
        Rejected = "REJECTED", "支部否决", "Rejected by the branch";
    }
);

coded_enum!(
    /// The service a 特殊人群服务 record gave the person served.
    ServiceKind, "service" {
        CareVisit = "CARE_VISIT", "走访慰问", "Visit and comfort";
        CheckIn = "CHECK_IN", "探视", "Check-in";
        Aid = "AID", "帮扶救助", "Aid";
        Counselling = "COUNSELLING", "心理疏导", "Counselling";
        PolicyErrand = "POLICY_ERRAND", "政策代办", "Policy errand";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    /// The matter of a 民生服务 record.
    LivelihoodMatter, "livelihood matter" {
        Documents = "DOCUMENTS", "代办证件", "Documents";
        Insurance = "INSURANCE", "医保社保", "Medical and social insurance";
        Employment = "EMPLOYMENT", "就业", "Employment";
        AidApplication = "AID_APPLICATION", "救助申请", "Aid application";
        Repair = "REPAIR", "维修", "Repair";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    VisitPurpose, "visit purpose" {
        Routine = "ROUTINE", "日常走访", "Routine visit";
        Care = "CARE", "关爱帮扶", "Care";
        Verify = "VERIFY", "信息核实", "Verify information";
        Publicity = "PUBLICITY", "政策宣传", "Publicity";
        FollowUp = "FOLLOW_UP", "回访", "Follow-up";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    HouseUse, "house use" {
        OwnerOccupied = "OWNER_OCCUPIED", "自住", "Owner-occupied";
        Rental = "RENTAL", "出租", "Rental";
        Collective = "COLLECTIVE", "集体", "Collective";
        Vacant = "VACANT", "闲置", "Vacant";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    /// Sex, with the codes of GB/T 2261.1.
    Sex, "sex" {
        Male = "1", "男", "Male";
        Female = "2", "女", "Female";
    }
);

coded_enum!(
    /// Identity document type; 111 is the resident identity card (GA/T 517 codes).
    IdType, "ID type" {
        ResidentCard = "111", "居民身份证", "Resident identity card";
        TemporaryCard = "112", "临时居民身份证", "Temporary identity card";
        Passport = "414", "普通护照", "Passport";
        HkMacauPermit = "516", "港澳居民来往内地通行证", "Home-return permit (HK/Macao)";
        TaiwanPermit = "511", "台湾居民来往大陆通行证", "Mainland travel permit (Taiwan)";
        ForeignerResidence = "553", "外国人永久居留身份证", "Foreigner permanent residence card";
        Other = "990", "其他", "Other";
    }
);

coded_enum!(
    PersonType, "person type" {
        Household = "HOUSEHOLD", "户籍", "Registered resident";
        Floating = "FLOATING", "流动", "Floating";
        Overseas = "OVERSEAS", "境外", "Overseas";
        Unsettled = "UNSETTLED", "未落户", "Unregistered";
    }
);

coded_enum!(
    ResidenceStatus, "residence status" {
        Both = "BOTH", "人户同在", "Living at registered address";
        HukouOnly = "HUKOU_ONLY", "户在人不在", "Registered, living elsewhere";
        PersonOnly = "PERSON_ONLY", "人在户不在", "Living here, registered elsewhere";
    }
);

coded_enum!(
    PersonStatus, "person status" {
        Active = "ACTIVE", "在册", "Active";
        MovedOut = "MOVED_OUT", "迁出", "Moved out";
        Deceased = "DECEASED", "死亡", "Deceased";
        Merged = "MERGED", "已合并", "Merged";
    }
);

coded_enum!(
    /// Relation to the head of household.
    Relation, "relation to head" {
        Head = "HEAD", "户主", "Head";
        Spouse = "SPOUSE", "配偶", "Spouse";
        Son = "SON", "子", "Son";
        Daughter = "DAUGHTER", "女", "Daughter";
        ChildInLaw = "CHILD_IN_LAW", "儿媳/女婿", "Child-in-law";
        Grandchild = "GRANDCHILD", "孙子女", "Grandchild";
        Parent = "PARENT", "父母", "Parent";
        Grandparent = "GRANDPARENT", "祖父母", "Grandparent";
        Sibling = "SIBLING", "兄弟姐妹", "Sibling";
        Other = "OTHER", "其他", "Other";
    }
);

coded_enum!(
    /// Special-population tags. The managed ones are sensitive (see [`Tag::is_managed`]).
    Tag, "special-population tag" {
        ElderlyAlone = "ELDERLY_ALONE", "独居/空巢老人", "Elderly living alone";
        ElderlyHighAge = "ELDERLY_HIGH_AGE", "高龄", "Very old";
        LeftBehindChild = "LEFT_BEHIND_CHILD", "留守儿童", "Left-behind child";
        LeftBehindAdult = "LEFT_BEHIND_ADULT", "留守老人/妇女", "Left-behind elder or woman";
        Disabled = "DISABLED", "残疾人", "Disabled";
        LowIncome = "LOW_INCOME", "低保", "Minimum-income support";
        ExtremePoverty = "EXTREME_POVERTY", "特困", "Extreme poverty support";
        VeteranEntitled = "VETERAN_ENTITLED", "优抚", "Veteran entitlement";
        CommunityCorrection = "COMMUNITY_CORRECTION", "社区矫正", "Community correction";
        ReleasedPrisoner = "RELEASED_PRISONER", "刑满释放", "Released prisoner";
        SevereMentalDisorder = "SEVERE_MENTAL_DISORDER", "严重精神障碍", "Severe mental disorder";
        DrugUser = "DRUG_USER", "吸毒", "Drug user";
        KeyPetitioner = "KEY_PETITIONER", "重点信访", "Key petitioner";
    }
);

impl Tag {
    /// Managed (sensitive) tags: never shown on a list card a resident might see.
    pub fn is_managed(self) -> bool {
        matches!(
            self,
            Tag::CommunityCorrection
                | Tag::ReleasedPrisoner
                | Tag::SevereMentalDisorder
                | Tag::DrugUser
                | Tag::KeyPetitioner
        )
    }

    /// The default visit cadence in days for a person with this tag; counties may override it
    /// (the store keeps the table the county sent).
    pub fn default_cadence_days(self) -> u32 {
        match self {
            Tag::ElderlyAlone => 7,
            Tag::ElderlyHighAge => 14,
            Tag::LeftBehindChild => 14,
            Tag::LeftBehindAdult => 30,
            Tag::Disabled => 30,
            Tag::LowIncome => 30,
            Tag::ExtremePoverty => 14,
            Tag::VeteranEntitled => 90,
            Tag::CommunityCorrection => 7,
            Tag::ReleasedPrisoner => 30,
            Tag::SevereMentalDisorder => 7,
            Tag::DrugUser => 14,
            Tag::KeyPetitioner => 7,
        }
    }
}

/// Every household is visited at least this often (走访全覆盖), tagged or not.
pub const DEFAULT_HOUSEHOLD_CADENCE_DAYS: u32 = 90;

/// A convenience for displaying any coded value in a language.
pub struct Labeled<T: Coded>(pub T, pub Lang);

impl<T: Coded> fmt::Display for Labeled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.label(self.1))
    }
}

coded_enum!(
    /// What the county asks a grid worker to do (派给网格员的任务).
    TaskKind, "task kind" {
        RecheckHazard = "RECHECK_HAZARD", "复查隐患", "Recheck a hazard";
        VisitHousehold = "VISIT_HOUSEHOLD", "入户走访", "Visit a household";
        Verify = "VERIFY", "核实情况", "Verify a report";
        Other = "OTHER", "其他", "Other";
    }
);

impl TaskKind {
    /// Whether completing it needs a photo of the site (a hazard recheck is evidence).
    pub fn needs_photo(self) -> bool {
        self == TaskKind::RecheckHazard
    }
}

coded_enum!(
    /// Where a task stands: open until its worker completes it, or the county cancels it.
    TaskStatus, "task status" {
        Open = "OPEN", "待完成", "Open";
        Done = "DONE", "已完成", "Done";
        Cancelled = "CANCELLED", "已撤销", "Cancelled";
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_urgency_never_falls_below_its_floor() {
        use Urgency::*;
        assert_eq!(Normal.at_least(Urgent), Urgent);
        assert_eq!(Major.at_least(Urgent), Major);
        assert_eq!(Urgent.at_least(Normal), Urgent);
        assert_eq!(Severity::High.urgency(), Urgent);
        assert_eq!(Normal.at_least(Severity::High.urgency()), Urgent);
    }

    fn check_unique<T: Coded + fmt::Debug>() {
        let mut codes: Vec<_> = T::ALL.iter().map(|v| v.code()).collect();
        let n = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), n, "duplicate code in {}", T::KIND);
        for v in T::ALL {
            assert!(
                !v.zh().is_empty() && !v.en().is_empty(),
                "{v:?} lacks a label"
            );
            assert_eq!(T::from_code(v.code()).map(|x| x.code()), Ok(v.code()));
        }
    }

    #[test]
    fn codes_are_unique_labelled_and_round_trip() {
        check_unique::<Domain>();
        check_unique::<Urgency>();
        check_unique::<Supervision>();
        check_unique::<DeadlineState>();
        check_unique::<HazardCategory>();
        check_unique::<Severity>();
        check_unique::<OpinionCategory>();
        check_unique::<DisputeCategory>();
        check_unique::<MediationMethod>();
        check_unique::<PartyRole>();
        check_unique::<Satisfaction>();
        check_unique::<EmergencyCategory>();
        check_unique::<EmergencyLevel>();
        check_unique::<ReportStage>();
        check_unique::<DeliberationStage>();
        check_unique::<VisitPurpose>();
        check_unique::<ServiceKind>();
        check_unique::<LivelihoodMatter>();
        check_unique::<HouseUse>();
        check_unique::<Sex>();
        check_unique::<IdType>();
        check_unique::<PersonType>();
        check_unique::<ResidenceStatus>();
        check_unique::<PersonStatus>();
        check_unique::<Relation>();
        check_unique::<Tag>();
        check_unique::<TaskKind>();
        check_unique::<TaskStatus>();
    }

    #[test]
    fn unknown_code_names_the_enum_and_the_code() {
        let err = HazardCategory::from_code("FIREWORKS").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("hazard category"), "{msg}");
        assert!(msg.contains("FIREWORKS"), "{msg}");
    }

    #[test]
    fn serde_uses_stored_codes() {
        let json = serde_json::to_string(&HazardCategory::CorridorEbike).unwrap();
        assert_eq!(json, "\"CORRIDOR_EBIKE\"");
        let back: HazardCategory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, HazardCategory::CorridorEbike);
        assert!(serde_json::from_str::<Urgency>("\"SOON\"").is_err());
    }

    #[test]
    fn managed_tags_are_exactly_the_sensitive_five() {
        let managed: Vec<_> = Tag::ALL.iter().filter(|t| t.is_managed()).collect();
        assert_eq!(managed.len(), 5);
        assert!(!Tag::ElderlyAlone.is_managed());
    }
}
