//! Course enrolment, decided across entities: a student subscribes to a course while the
//! course has a free seat *and* the student takes fewer than [`COURSE_LIMIT`] courses.
//! Neither rule belongs to one aggregate — the course's capacity spans its students, the
//! limit spans the student's courses — so the subscription is one decision over three
//! models built from tagged events ([`Course`] keyed by the course, [`StudentCourses`] by
//! the student, [`Enrolment`] by both), appended only if none of their events changed
//! since they were read. No saga, no reservation aggregate, no compensation.
//!
//! [`demo`] runs it on a SQLite file: courses defined, students subscribed and refused,
//! and two students racing for a course's last seat.

pub mod demo;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// The most courses a student takes at once.
pub const COURSE_LIMIT: u32 = 3;

/// A course was offered with a number of seats.
#[event(name = "CourseDefined", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct CourseDefined {
    /// The course.
    #[tag]
    pub course: String,
    /// Its title.
    pub title: String,
    /// How many students it seats.
    pub capacity: u32,
}

/// A course's capacity changed.
#[event(name = "CourseCapacityChanged", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct CourseCapacityChanged {
    /// The course.
    #[tag]
    pub course: String,
    /// How many students it seats now.
    pub capacity: u32,
}

/// A student took a seat in a course.
#[event(name = "StudentSubscribed", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct StudentSubscribed {
    /// The course.
    #[tag]
    pub course: String,
    /// The student.
    #[tag]
    pub student: String,
}

/// Every event of course enrolment.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum EnrolmentEvent {
    /// A course was offered.
    Defined(CourseDefined),
    /// A course's capacity changed.
    CapacityChanged(CourseCapacityChanged),
    /// A student took a seat.
    Subscribed(StudentSubscribed),
}

/// A course: whether it is offered, its capacity and its seats taken.
#[derive(Debug, Default)]
pub struct Course {
    /// Its title, once offered.
    pub title: Option<String>,
    /// How many students it seats.
    pub capacity: u32,
    /// How many took a seat.
    pub taken: u32,
}

#[decision_model(tags(course))]
impl Course {
    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.title = Some(event.title.clone());
        self.capacity = event.capacity;
    }

    #[apply]
    fn capacity_changed(&mut self, event: &CourseCapacityChanged) {
        self.capacity = event.capacity;
    }

    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.taken += 1;
    }
}

/// How many courses a student takes.
#[derive(Debug, Default)]
pub struct StudentCourses(pub u32);

#[decision_model(tags(student))]
impl StudentCourses {
    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.0 += 1;
    }
}

/// Whether a student took a course already.
#[derive(Debug, Default)]
pub struct Enrolment(pub bool);

#[decision_model(tags(course, student))]
impl Enrolment {
    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.0 = true;
    }
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolmentError {
    /// The course is offered already.
    #[error("course {0} is offered already")]
    CourseExists(String),
    /// No such course is offered.
    #[error("course {0} is not offered")]
    NoSuchCourse(String),
    /// Every seat is taken.
    #[error("course {course} is full: its {capacity} seats are taken")]
    CourseFull {
        /// The course.
        course: String,
        /// Its capacity.
        capacity: u32,
    },
    /// The student takes as many courses as allowed.
    #[error("{0} takes {COURSE_LIMIT} courses already, the most a student takes")]
    TooManyCourses(String),
    /// The student took the course already.
    #[error("{student} took course {course} already")]
    AlreadySubscribed {
        /// The student.
        student: String,
        /// The course.
        course: String,
    },
    /// A capacity below the seats taken.
    #[error("course {course} has {taken} students: its capacity cannot drop to {capacity}")]
    CapacityBelowTaken {
        /// The course.
        course: String,
        /// The seats taken.
        taken: u32,
        /// The capacity asked for.
        capacity: u32,
    },
}

/// Offers a course.
#[command(name = "DefineCourse")]
#[derive(Clone)]
pub struct DefineCourse {
    /// The course.
    #[aggregate_id]
    pub course: String,
    /// Its title.
    pub title: String,
    /// How many students it seats.
    pub capacity: u32,
}

impl Decide for DefineCourse {
    const STREAM_TYPE: &'static str = "Course";
    type Models = (Course,);
    type Events = EnrolmentEvent;
    type Error = EnrolmentError;

    fn models(&self) -> (Keyed<Course>,) {
        (Course::keyed(&self.course),)
    }

    fn decide(
        &self,
        (course,): (Course,),
        _: &CommandContext,
    ) -> Result<Vec<EnrolmentEvent>, EnrolmentError> {
        if course.title.is_some() {
            return Err(EnrolmentError::CourseExists(self.course.clone()));
        }
        Ok(vec![EnrolmentEvent::Defined(CourseDefined {
            course: self.course.clone(),
            title: self.title.clone(),
            capacity: self.capacity,
        })])
    }
}

/// Changes a course's capacity (never below the seats taken).
#[command(name = "ChangeCourseCapacity")]
#[derive(Clone)]
pub struct ChangeCourseCapacity {
    /// The course.
    #[aggregate_id]
    pub course: String,
    /// How many students it seats from now on.
    pub capacity: u32,
}

impl Decide for ChangeCourseCapacity {
    const STREAM_TYPE: &'static str = "Course";
    type Models = (Course,);
    type Events = EnrolmentEvent;
    type Error = EnrolmentError;

    fn models(&self) -> (Keyed<Course>,) {
        (Course::keyed(&self.course),)
    }

    fn decide(
        &self,
        (course,): (Course,),
        _: &CommandContext,
    ) -> Result<Vec<EnrolmentEvent>, EnrolmentError> {
        if course.title.is_none() {
            return Err(EnrolmentError::NoSuchCourse(self.course.clone()));
        }
        if self.capacity < course.taken {
            return Err(EnrolmentError::CapacityBelowTaken {
                course: self.course.clone(),
                taken: course.taken,
                capacity: self.capacity,
            });
        }
        Ok(vec![EnrolmentEvent::CapacityChanged(
            CourseCapacityChanged {
                course: self.course.clone(),
                capacity: self.capacity,
            },
        )])
    }
}

/// Subscribes a student to a course: the one decision across both.
#[command(name = "SubscribeStudent")]
#[derive(Clone, Serialize, Deserialize)]
pub struct SubscribeStudent {
    /// The subscription: `<course>/<student>`, the stream its event goes to.
    #[aggregate_id]
    pub subscription: String,
    /// The course.
    pub course: String,
    /// The student.
    pub student: String,
}

impl SubscribeStudent {
    /// `student`'s subscription to `course`.
    pub fn new(course: &str, student: &str) -> Self {
        Self {
            subscription: format!("{course}/{student}"),
            course: course.to_owned(),
            student: student.to_owned(),
        }
    }
}

impl Decide for SubscribeStudent {
    const STREAM_TYPE: &'static str = "Subscription";
    type Models = (Course, StudentCourses, Enrolment);
    type Events = EnrolmentEvent;
    type Error = EnrolmentError;

    fn models(&self) -> (Keyed<Course>, Keyed<StudentCourses>, Keyed<Enrolment>) {
        (
            Course::keyed(&self.course),
            StudentCourses::keyed(&self.student),
            Enrolment::keyed(&self.course, &self.student),
        )
    }

    fn decide(
        &self,
        (course, courses, enrolment): (Course, StudentCourses, Enrolment),
        _: &CommandContext,
    ) -> Result<Vec<EnrolmentEvent>, EnrolmentError> {
        if course.title.is_none() {
            return Err(EnrolmentError::NoSuchCourse(self.course.clone()));
        }
        if enrolment.0 {
            return Err(EnrolmentError::AlreadySubscribed {
                student: self.student.clone(),
                course: self.course.clone(),
            });
        }
        if course.taken >= course.capacity {
            return Err(EnrolmentError::CourseFull {
                course: self.course.clone(),
                capacity: course.capacity,
            });
        }
        if courses.0 >= COURSE_LIMIT {
            return Err(EnrolmentError::TooManyCourses(self.student.clone()));
        }
        Ok(vec![EnrolmentEvent::Subscribed(StudentSubscribed {
            course: self.course.clone(),
            student: self.student.clone(),
        })])
    }
}

#[cfg(test)]
mod tests {
    use factum::testing::DecisionFixture;

    use super::*;

    fn defined(course: &str, capacity: u32) -> CourseDefined {
        CourseDefined {
            course: course.into(),
            title: format!("The {course} course"),
            capacity,
        }
    }

    fn subscribed(course: &str, student: &str) -> StudentSubscribed {
        StudentSubscribed {
            course: course.into(),
            student: student.into(),
        }
    }

    #[test]
    fn a_student_takes_a_free_seat() {
        DecisionFixture::<SubscribeStudent>::new()
            .given((defined("rust", 2), subscribed("rust", "grace")))
            .when(SubscribeStudent::new("rust", "ada"))
            .then_expect_events([subscribed("rust", "ada")]);
    }

    #[test]
    fn seats_taken_in_other_courses_do_not_count() {
        DecisionFixture::<SubscribeStudent>::new()
            .given((
                defined("rust", 1),
                defined("go", 1),
                subscribed("go", "grace"),
            ))
            .when(SubscribeStudent::new("rust", "ada"))
            .then_expect_events([subscribed("rust", "ada")]);
    }

    #[test]
    fn a_full_course_refuses() {
        DecisionFixture::<SubscribeStudent>::new()
            .given((defined("rust", 1), subscribed("rust", "grace")))
            .when(SubscribeStudent::new("rust", "ada"))
            .then_expect_error(EnrolmentError::CourseFull {
                course: "rust".into(),
                capacity: 1,
            });
    }

    #[test]
    fn a_student_at_the_limit_is_refused_across_courses() {
        DecisionFixture::<SubscribeStudent>::new()
            .given([
                defined("a", 9),
                defined("b", 9),
                defined("c", 9),
                defined("d", 9),
            ])
            .given([
                subscribed("a", "ada"),
                subscribed("b", "ada"),
                subscribed("c", "ada"),
            ])
            .when(SubscribeStudent::new("d", "ada"))
            .then_expect_error(EnrolmentError::TooManyCourses("ada".into()));
    }

    #[test]
    fn a_seat_taken_meanwhile_outdates_the_decision() {
        DecisionFixture::<SubscribeStudent>::new()
            .given([defined("rust", 1)])
            .meanwhile([subscribed("rust", "grace")])
            .when(SubscribeStudent::new("rust", "ada"))
            .then_expect_conflict();
    }

    #[test]
    fn a_subscription_elsewhere_meanwhile_changes_nothing_it_read() {
        // Another course and another student: no model of this decision reads it.
        DecisionFixture::<SubscribeStudent>::new()
            .given([defined("rust", 1), defined("go", 1)])
            .meanwhile([subscribed("go", "grace")])
            .when(SubscribeStudent::new("rust", "ada"))
            .then_expect_events([subscribed("rust", "ada")]);
    }

    #[test]
    fn the_capacity_never_drops_below_the_seats_taken() {
        DecisionFixture::<ChangeCourseCapacity>::new()
            .given((
                defined("rust", 3),
                subscribed("rust", "ada"),
                subscribed("rust", "grace"),
            ))
            .when(ChangeCourseCapacity {
                course: "rust".into(),
                capacity: 1,
            })
            .then_expect_error(EnrolmentError::CapacityBelowTaken {
                course: "rust".into(),
                taken: 2,
                capacity: 1,
            });
    }
}
