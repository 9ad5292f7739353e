//! The columns of a households file (Chinese and English names, as templates and exports
//! write them) and the words people type for relations, tags and sex.

use crate::domain::codes::{Relation, Sex, Tag};
use crate::server::data::table::Col;

pub const COLUMNS: &[Col] = &[
    Col {
        key: "grid_code",
        names: &["网格编码", "网格代码", "grid_code", "grid"],
        required: true,
    },
    Col {
        key: "grid_name",
        names: &["网格名称", "grid_name"],
        required: false,
    },
    Col {
        key: "household_id",
        names: &["户ID", "户id", "household_id"],
        required: false,
    },
    Col {
        key: "household_no",
        names: &["户编号", "户号", "household_no"],
        required: false,
    },
    Col {
        key: "house_number",
        names: &["门牌号", "house_number"],
        required: false,
    },
    Col {
        key: "address",
        names: &["地址", "住址", "家庭住址", "address"],
        required: true,
    },
    Col {
        key: "house_use",
        names: &["房屋用途", "房屋性质", "house_use"],
        required: false,
    },
    Col {
        key: "lon",
        names: &["经度", "lon", "longitude"],
        required: false,
    },
    Col {
        key: "lat",
        names: &["纬度", "lat", "latitude"],
        required: false,
    },
    Col {
        key: "person_id",
        names: &["人员ID", "人员id", "person_id"],
        required: false,
    },
    Col {
        key: "name",
        names: &["姓名", "name"],
        required: true,
    },
    Col {
        key: "relation",
        names: &["与户主关系", "relation"],
        required: true,
    },
    Col {
        key: "sex",
        names: &["性别", "sex"],
        required: false,
    },
    Col {
        key: "birth_date",
        names: &["出生日期", "birth_date"],
        required: false,
    },
    Col {
        key: "id_type",
        names: &["证件类型", "id_type"],
        required: false,
    },
    Col {
        key: "id_number",
        names: &[
            "身份证号",
            "身份证号码",
            "公民身份号码",
            "证件号码",
            "id_number",
        ],
        required: false,
    },
    Col {
        key: "phone",
        names: &["联系电话", "电话", "手机号", "手机", "phone"],
        required: false,
    },
    Col {
        key: "person_type",
        names: &["人员类型", "person_type"],
        required: false,
    },
    Col {
        key: "residence",
        names: &["人户状态", "居住状态", "residence"],
        required: false,
    },
    Col {
        key: "status",
        names: &["人员状态", "status"],
        required: false,
    },
    Col {
        key: "tags",
        names: &["标签", "特殊人群", "人员标签", "tags"],
        required: false,
    },
];

pub(super) const RELATION_SYNONYMS: &[(&str, Relation)] = &[
    ("本人", Relation::Head),
    ("妻", Relation::Spouse),
    ("妻子", Relation::Spouse),
    ("夫", Relation::Spouse),
    ("丈夫", Relation::Spouse),
    ("儿子", Relation::Son),
    ("长子", Relation::Son),
    ("次子", Relation::Son),
    ("女儿", Relation::Daughter),
    ("长女", Relation::Daughter),
    ("次女", Relation::Daughter),
    ("儿媳", Relation::ChildInLaw),
    ("女婿", Relation::ChildInLaw),
    ("孙子", Relation::Grandchild),
    ("孙女", Relation::Grandchild),
    ("外孙", Relation::Grandchild),
    ("外孙女", Relation::Grandchild),
    ("父亲", Relation::Parent),
    ("母亲", Relation::Parent),
    ("祖父", Relation::Grandparent),
    ("祖母", Relation::Grandparent),
    ("兄", Relation::Sibling),
    ("弟", Relation::Sibling),
    ("姐", Relation::Sibling),
    ("妹", Relation::Sibling),
];

pub(super) const TAG_SYNONYMS: &[(&str, Tag)] = &[
    ("独居老人", Tag::ElderlyAlone),
    ("空巢", Tag::ElderlyAlone),
    ("高龄老人", Tag::ElderlyHighAge),
    ("留守妇女", Tag::LeftBehindAdult),
    ("残疾", Tag::Disabled),
    ("低保户", Tag::LowIncome),
    ("特困供养", Tag::ExtremePoverty),
    ("特困人员", Tag::ExtremePoverty),
    ("优抚对象", Tag::VeteranEntitled),
    ("社区矫正对象", Tag::CommunityCorrection),
    ("刑释人员", Tag::ReleasedPrisoner),
    ("精神障碍", Tag::SevereMentalDisorder),
    ("吸毒人员", Tag::DrugUser),
];

pub(super) const SEX_SYNONYMS: &[(&str, Sex)] = &[("m", Sex::Male), ("f", Sex::Female)];
