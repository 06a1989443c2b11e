"""PHI scrubbing against identifiers it has never seen: the independent corpus of
:mod:`tests.phi_corpus` (hand-written names, identifiers generated from their specifications,
planted in the real reports of ../shared/data), shapes that leaked before the allow-list, and
the wall between the corpus and the scrubber."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mammosearch.nlp import normalize
from mammosearch.nlp.scrub import Scrubber, scrub
from tests.conftest import REPO, shared_path
from tests.phi_corpus import (
    aadhaar,
    brazil_cpf,
    chile_rut,
    half,
    mexico_curp,
    nhs_number,
    plant,
    real_reports,
    recall_by_kind,
    spanish_dni,
)


def _content(text: str) -> tuple[object, ...]:
    report = normalize(text)
    findings = sorted(
        repr((f.type, f.laterality, f.negated, f.uncertain, f.historical, f.descriptors))
        for f in report.findings
    )
    return (report.density and report.density.category,
            report.birads and report.birads.category, findings)  # fmt: skip


@pytest.mark.shared_data
@pytest.mark.parametrize(("which", "floor"), [("dev", 0.99), ("test", 0.97)])
def test_recall_on_the_independent_corpus(which: str, floor: float) -> None:
    """Every kind at 0.99 or more on the half the rules were tuned on; on the held-out half
    every kind at 0.97 or more and all of them together at 0.99 (bench/phi.py prints both)."""
    reports = [r for r in real_reports(shared_path("reports-real")) if half(r[0]) == which]
    planted = plant(reports, copies=2, seed=7)
    scores = recall_by_kind([(p.text, p.spans) for p in planted], Scrubber().find)
    assert {"NAME", "ID", "DATE", "ADDRESS", "INSTITUTION", "PHONE"} <= set(scores)
    for kind, (caught, total) in scores.items():
        assert caught >= floor * total, (kind, caught, total)
    assert sum(c for c, _ in scores.values()) >= 0.99 * sum(t for _, t in scores.values())


@pytest.mark.shared_data
def test_scrubbing_a_planted_report_keeps_its_clinical_content() -> None:
    """What the normalizer reads in a planted report, it reads the same once it is scrubbed."""
    planted = plant(real_reports(shared_path("reports-real")), copies=1, seed=11)
    for report in planted:
        assert _content(scrub(report.text).text) == _content(report.text), report.report_id


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("GARCÍA ÑAMANDÚ, Rosalba\nMAMAS TIPO B. BI-RADS 2.", ["GARCÍA", "ÑAMANDÚ", "Rosalba"]),
        ("Zubizarreta Etxeberria\nACR B. BI-RADS 1.", ["Zubizarreta", "Etxeberria"]),
        ("Patient: VENKATARAMAN, Padmavathi   Age/Sex: 93/F\nACR C.", ["VENKATARAMAN",
                                                                     "Padmavathi", "93"]),
        ("Nombre y apellido: Kuarahy Benítez   C.I. Nº 4.567.890\nMAMAS TIPO B.",
         ["Kuarahy", "Benítez", "4.567.890"]),
        (f"DNI {spanish_dni(__import__('random').Random(1))}\nACR B.", ["DNI [ID]"]),
        ("MRN-AB-12345 ACR B. BI-RADS 2.", ["MRN-AB-12345", "12345"]),
        ("Acc.RX23-001234\nMamas tipo C.", ["RX23", "001234"]),
        ("NHC 12 345 678\nMamas tipo C.", ["12", "345", "678"]),
        ("MAMAS TIPO C. BI-RADS 2.\nInformó: Dra. Arami Villalba Ocampos\nReg. Prof. 4471",
         ["Arami", "Villalba", "Ocampos", "4471"]),
        ("BIRADS 2.\nAtte.,\nNilda Cardozo\nRP 5512", ["Nilda", "Cardozo", "5512"]),
        ("La paciente María Ñasaindy Ortellado refiere dolor en mama izquierda. ACR B.",
         ["Ñasaindy", "Ortellado"]),
        ("Mrs Raghunathan attended with her daughter Kavitha. ACR B. BI-RADS 1.",
         ["Raghunathan", "Kavitha"]),
        ("Sanatorio Ita Ybate\nMAMAS TIPO B.", ["Ita Ybate"]),
        ("Kowalczyk Scan Centre, #12, 4th Cross, Residency Road, Bengaluru - 560025\nACR B.",
         ["Kowalczyk", "Residency", "560025"]),
    ],
)  # fmt: skip
def test_shapes_that_leaked_before(text: str, gone: list[str]) -> None:
    result = scrub(text).text
    for value in gone:
        if value.startswith("DNI"):
            assert value in result, result
        else:
            assert value not in result, (value, result)


@pytest.mark.parametrize("make", [aadhaar, nhs_number, mexico_curp, chile_rut, brazil_cpf])
def test_national_identifiers_in_a_header(make: object) -> None:
    import random

    rng = random.Random(3)
    for _ in range(20):
        value = make(rng)  # type: ignore[operator]
        text = f"ID: {value}\nBreast composition: ACR B. BI-RADS 1."
        assert all(part not in scrub(text).text for part in value.split()), value


def test_the_corpus_generators_follow_their_specifications() -> None:
    import random

    rng = random.Random(5)
    dni = spanish_dni(rng).replace(".", "").replace("-", "")
    assert "TRWAGMYFPDXBNJZSQVHLCKE"[int(dni[:8]) % 23] == dni[8]
    nhs = nhs_number(rng).replace(" ", "")
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(nhs[:9])) % 11
    assert int(nhs[9]) == (0 if check == 11 else check)
    assert len(mexico_curp(rng)) == 18
    assert len(aadhaar(rng).replace(" ", "")) == 12


def test_mammosearch_never_imports_the_corpus() -> None:
    """The corpus must stay independent: no module of the package names it, and scrubbing
    does not load it."""
    for path in (REPO / "mammosearch").rglob("*.py"):
        assert "phi_corpus" not in path.read_text(encoding="utf-8"), path
    code = (
        "import sys; from mammosearch.nlp.scrub import scrub; scrub('Dr. Ana Ruiz, ACR B'); "
        "import mammosearch.samples.phi; "
        "sys.exit(any('phi_corpus' in name for name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(REPO), check=False)
    assert done.returncode == 0


# house styles written apart from the corpus templates (headers, signatures, inline mentions)
_ES = "MAMAS TIPO B. NO SE OBSERVAN NÓDULOS. BI-RADS 2."
_EN = "Breast composition: ACR B. No suspicious mass. BI-RADS 1."
_PROBES = [
    (
        "Paciente: Sra. Edelira Ayala de Benítez, 67 años, CI 2.345.678\n" + _ES,
        ["Edelira", "Ayala", "Benítez", "2.345.678"],
    ),
    ("PATIENT NAME: KOWALSKI JANINA M\n" + _EN, ["KOWALSKI", "JANINA"]),
    ("Pt: Ng, Mei-Ling (DOB 1955-03-02)\n" + _EN, ["Ng", "Mei-Ling", "1955"]),
    ("Solicitado por: DR. PERALTA\n" + _ES, ["PERALTA"]),
    (
        _ES + "\nReporte firmado digitalmente por Dr. Hugo Benegas Riquelme - Matrícula 12.345",
        ["Hugo", "Benegas", "Riquelme", "12.345"],
    ),
    ("Hospital Regional de Coronel Oviedo\n" + _ES, ["Coronel Oviedo"]),
    (_ES + "\nAdjunto: Dra. C. Insaurralde", ["Insaurralde"]),
    (_EN + "\nTranscribed by: mjk 03/05/21", ["mjk", "03/05/21"]),
    (_ES + "\nCopia a: Dr. Ruiz Díaz (Ginecología)", ["Ruiz", "Díaz"]),
    ("Ref: Dr Anand Krishnamurthy, MD (Gyn)\n" + _EN, ["Anand", "Krishnamurthy"]),
    ("Mrs. Lakshmi Narayanan, W/O Mr. Narayanan Iyer\n" + _EN, ["Lakshmi", "Narayanan", "Iyer"]),
    ("Age : 62 Yrs  Sex : F   Ref.Dr : Dr.Sunitha\n" + _EN, ["Sunitha"]),
    ("Lab No: 23-RAD-004512\n" + _EN, ["004512", "23-RAD"]),
    ("Se realizó comparación con estudio del IPS de fecha 12/02/2020. " + _ES, ["12/02/2020"]),
    (
        "Compared with outside films from Narayana Hrudayalaya dated 12.03.2021. " + _EN,
        ["Narayana", "Hrudayalaya", "12.03.2021"],
    ),
    (_EN + "\nConsultant: Dr. (Mrs.) Rekha Shenoy", ["Rekha", "Shenoy"]),
    (
        "Nombre: GIMÉNEZ DE ROJAS, MARÍA AUXILIADORA  Edad: 71\n" + _ES,
        ["GIMÉNEZ", "ROJAS", "AUXILIADORA"],
    ),
    (
        "Name of the patient - Smt. Parvathamma\nHospital No - 2021/45678\n" + _EN,
        ["Parvathamma", "45678"],
    ),
    (
        _ES
        + "\nDr. Osvaldo Ramírez Fleitas\nEspecialista en Imágenes\nRegistro Profesional N° 3.215",
        ["Osvaldo", "Ramírez", "Fleitas", "3.215"],
    ),
    (
        "MRN:00456712 Acc#:RA-2023-118 Ordering: HOLLOWAY, TAMSIN J\n" + _EN,
        ["00456712", "RA-2023-118", "HOLLOWAY", "TAMSIN"],
    ),
    (
        "Paciente de 58 años, Doña Eustaquia Vera, que concurre para control. " + _ES,
        ["Eustaquia", "Vera"],
    ),
    ("The patient Ms Okafor was seen today. " + _EN, ["Okafor"]),
    ("LA PACIENTE NÉLIDA CANTERO CONCURRE PARA CONTROL. " + _ES, ["NÉLIDA", "CANTERO"]),
    ("Tel 0971 234 567 / 021 555 444\n" + _ES, ["0971", "234", "567", "555", "444"]),
    (
        "Direccion: Barrio Obrero, calle Itá Ybaté c/ Teniente Fariña\n" + _ES,
        ["Obrero", "Itá", "Ybaté", "Teniente", "Fariña"],
    ),
    ("Sede: San Lorenzo\n" + _ES, ["San Lorenzo"]),
    ("Pat-ID: 8812-4471-2\n" + _EN, ["8812", "4471"]),
    ("ID Paciente 4471233\n" + _EN, ["4471233"]),
    ("Study date 2023 Mar 14\n" + _EN, ["14"]),
]


_B = "\nMAMAS TIPO B. BI-RADS 2."
_E = "\nBreast composition: ACR B. BI-RADS 1."
_MORE_PROBES = [
    ("PACIENTE: ROSA BLANCO" + _B, ["ROSA", "BLANCO"]),
    ("MARIA LUZ CRUZ" + _B, ["MARIA", "LUZ", "CRUZ"]),
    ("Grace Hope Young" + _E, ["Grace", "Hope", "Young"]),
    ("SE COMPARA CON ESTUDIO DE LA SRA. GONZALEZ." + _B, ["GONZALEZ"]),
    ("Mamografía de María Benítez realizada hoy. Mamas tipo B.", ["María", "Benítez"]),
    ("Control de 2021-03 sin cambios." + _B, ["2021-03"]),
    ("Estudio previo de marzo/2021." + _B, ["marzo/2021"]),
    ("FECHA: 03.III.2021" + _B, ["03.III.2021"]),
    ("PACIENTE DE 95 AÑOS." + _B, ["95"]),
    ("Historia: 0012345-6" + _B, ["0012345"]),
    ("Nº Doc.: 3.456.789" + _B, ["3.456.789"]),
    ("R.U.C.: 80012345-6" + _B, ["80012345"]),
    ("Teléfono: 0981.123.456" + _B, ["0981", "123.456"]),
    ("Email: juan_perez@hotmail.com" + _B, ["juan_perez"]),
    ("Cédula: 1.234.567  Sexo: F  Fecha nac.: 12/12/1950" + _B, ["1.234.567", "12/12/1950"]),
    ("Dirección: Mcal. López 1234, Asunción" + _B, ["López", "1234", "Asunción"]),
    ("Asunción, 12 de marzo de 2024" + _B, ["Asunción", "12 de marzo"]),
    ("Lima, 3 de mayo de 2023" + _B, ["Lima"]),
    (
        _E.strip() + "\n\nDr. Anil Kumar Sharma\nMD (Radiodiagnosis)\nReg No: KMC 45678",
        ["Anil", "Kumar", "Sharma", "45678"],
    ),
    ("Bangalore, 560034" + _E, ["Bangalore", "560034"]),
    ("Name: Mrs. MEENA DEVI W/O RAJU" + _E, ["MEENA", "DEVI", "RAJU"]),
    ("Patient: john smith (lowercase)" + _E, ["john", "smith"]),
    ("Ordering Physician: Patel, Nikhil R., MD" + _E, ["Patel", "Nikhil"]),
    ("Accession # 12345678  Exam: MAMMO SCREEN BIL" + _E, ["12345678"]),
    (
        _E.strip() + "\nI have personally reviewed the images. Rebecca L. Thornbury, M.D.",
        ["Rebecca", "Thornbury"],
    ),
    (
        _E.strip()
        + "\nThis report was electronically signed by Priya Raman, MD on 03/14/2023 at 14:22.",
        ["Priya", "Raman", "03/14/2023"],
    ),
    ("Paciente derivada del Centro de Salud Barrio Jara." + _B, ["Jara"]),
    (
        "Derivada por la Dra. Fátima Ñeñe del Hospital Nacional de Itauguá." + _B,
        ["Fátima", "Ñeñe", "Itauguá"],
    ),
]


@pytest.mark.parametrize(("text", "gone"), _PROBES + _MORE_PROBES)
def test_other_house_styles(text: str, gone: list[str]) -> None:
    result = scrub(text).text
    assert [value for value in gone if value in result] == [], result
